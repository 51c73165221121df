"""The CLI's standard streams when their reader goes away or their disk fills up.

stderr carries progress and log lines: a write that fails there (a closed pipe, a killed ``tee`` or
terminal, a full disk) is dropped and later ones are skipped, so the work goes on (a training run keeps
training and saving; its metrics are in ``metrics.jsonl``). stdout carries the result: a failure there is
reported once (``Error: cannot write the output ...``) and, at exit, stdout is pointed at ``/dev/null`` so
that Python's final flush prints no traceback.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO


class QuietOnFailure:
    """A text stream proxy whose writes and flushes never raise ``OSError``: after the first failure the
    stream is marked broken and everything later is dropped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except OSError:  # EPIPE, ENOSPC, EIO: the reader or the disk is gone
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except OSError:
                self.broken = True

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...
        return getattr(self._stream, name)


def guard_stderr() -> None:
    """Make ``sys.stderr`` a ``QuietOnFailure`` (once)."""
    if not isinstance(sys.stderr, QuietOnFailure):
        sys.stderr = QuietOnFailure(sys.stderr)  # type: ignore[assignment]


def silence_stdout_if_broken() -> None:
    """Flush stdout; if that fails, point its descriptor at /dev/null (no traceback at interpreter exit)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
