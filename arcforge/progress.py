"""A tiny progress protocol so library code can report progress without importing rich.

Library functions take ``progress: Progress | None``; the CLI passes a rich-backed adapter
(``arcforge.cli.console.RichProgress``) that is silent when stderr is not a TTY or with ``--json``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        """Begin a bar. ``unit="bytes"`` shows bytes and rate."""

    def advance(self, key: str, amount: float = 1) -> None: ...

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None: ...

    def finish(self, key: str) -> None: ...


class NullProgress:
    """Does nothing (the default for library calls)."""

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        pass

    def advance(self, key: str, amount: float = 1) -> None:
        pass

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        pass

    def finish(self, key: str) -> None:
        pass


NULL_PROGRESS = NullProgress()
