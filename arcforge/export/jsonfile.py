"""JSON files written an entry at a time: an object (``{"key": value, ...}``) or an array, never whole in
memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)


class JsonObjectFile:
    """``put(key, value)`` appends ``"key": value``; ``close`` ends the object."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries = 0
        self._f = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._f.write(b"{")

    def put(self, key: str, value: Any = None, *, raw: bytes | None = None) -> None:
        """Append an entry; ``raw``: the value already encoded as JSON."""
        self._f.write(b"," if self.entries else b"")
        self._f.write(b"\n" + encode(key) + b": " + (raw if raw is not None else encode(value)))
        self.entries += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.write(b"\n}\n")
            self._f.close()


class JsonArrayFile:
    """``append(value)`` adds an element; ``close`` ends the array."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries = 0
        self._f = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._f.write(b"[")

    def append(self, value: Any) -> None:
        self.append_raw(encode(value))

    def append_raw(self, raw: bytes) -> None:
        """Append a value already encoded as JSON."""
        self._f.write((b", " if self.entries else b"") + raw)
        self.entries += 1

    def close(self) -> None:
        if not self._f.closed:
            self._f.write(b"]\n")
            self._f.close()
