"""Errors a user can cause or meet: each carries one line to print and an exit code."""

from __future__ import annotations

USAGE = 2  # bad input: a file, an option, a model
FAILURE = 1  # the run itself failed (numerics, disk)
INTERRUPTED = 130


class NstError(Exception):
    """An expected failure: the CLI prints `str(error)` on one line and exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int = USAGE):
        super().__init__(message)
        self.exit_code = exit_code
