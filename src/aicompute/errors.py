"""The one exception type for user mistakes.

An ``AicomputeError`` says what was wrong and what would be right. The CLI turns it into a single
``error: …`` line and exit status 2, with no traceback. Bugs in aicompute itself are not
``AicomputeError``s: they keep their traceback.
"""


class AicomputeError(Exception):
    """A user-facing error: bad input, unknown name, corrupt file, impossible configuration."""
