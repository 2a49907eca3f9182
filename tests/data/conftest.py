"""Data tests never touch the user's cache: the whole session writes to a temporary ``$AICOMPUTE_CACHE``."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AICOMPUTE_CACHE", str(tmp_path_factory.mktemp("aicompute-cache")))
        yield
