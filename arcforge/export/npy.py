"""A ``.npy`` file written a block of rows at a time, its length unknown until it is closed.

The header (numpy's format 1.0) is written with room for any row count and rewritten with the real shape
on ``close``; ``np.load`` (and ``mmap_mode``) read the result like any other ``.npy`` file.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np

_MAGIC = b"\x93NUMPY\x01\x00"
_HEADER_BYTES = 128  # magic + length + dict, padded with spaces and ending in a newline


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    shape_text = f"({shape[0]},)" if len(shape) == 1 else f"({', '.join(str(n) for n in shape)})"
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape_text}, }}"
    body = text.encode("latin1")
    room = _HEADER_BYTES - len(_MAGIC) - 2 - len(body) - 1
    if room < 0:
        raise ValueError(f"npy header too long for {shape}")
    body += b" " * room + b"\n"
    return _MAGIC + len(body).to_bytes(2, "little") + body


class NpyWriter:
    """Append rows of shape ``row_shape`` and dtype ``dtype``; ``close`` fixes the header."""

    def __init__(self, path: Path, dtype: np.dtype | type, row_shape: tuple[int, ...] = ()) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._f = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._f.write(_header(self.dtype, (0, *self.row_shape)))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {block.shape[1:]}, expected {self.row_shape}")
        self._f.write(block.data)
        self.rows += block.shape[0]

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.seek(0)
        self._f.write(_header(self.dtype, (self.rows, *self.row_shape)))
        self._f.close()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
