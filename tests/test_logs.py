import logging

import pytest

from aicompute.logs import quiet_logger


def test_quiet_logger_silences_then_restores(caplog):
    log = logging.getLogger("aicompute.test.quiet")
    log.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger="aicompute.test.quiet"):
        with quiet_logger("aicompute.test.quiet"):
            log.warning("hidden")
        log.warning("shown")
    assert [r.getMessage() for r in caplog.records] == ["shown"]
    assert log.level == logging.INFO


def test_quiet_logger_restores_after_an_error():
    root = logging.getLogger()
    before = root.level
    with pytest.raises(ValueError), quiet_logger(None, logging.CRITICAL):
        assert root.level == logging.CRITICAL
        raise ValueError
    assert root.level == before
