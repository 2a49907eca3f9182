from aicompute import AicomputeError
from aicompute.errors import AicomputeError as Direct


def test_aicompute_error_is_one_exception_type_with_message():
    assert AicomputeError is Direct
    err = AicomputeError("unknown model 'x'; known: a, b")
    assert isinstance(err, Exception)
    assert str(err) == "unknown model 'x'; known: a, b"
