"""Reading JSON Lines files of any size: one record per line, decoded with msgspec, in bounded memory.

``records`` reads the stream in blocks of ``BLOCK`` bytes and decodes line by line, so memory is one block
plus the longest line, whatever the file's size. A line that is not valid JSON (or too long) is reported
as a ``Record`` without its object, with the reason, and the file goes on; blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import msgspec

from arcforge.formats import Member
from arcforge.task import TOO_LARGE, TaskFormatError, may_have_bools

BLOCK = 1 << 20  # bytes read at a time
MAX_LINE = 64 << 20  # a longer line is refused (one record; the largest upstream lines are a few MB)

_decoder = msgspec.json.Decoder()


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line bytes) for each line; ``None`` for a line over ``MAX_LINE`` (skipped to its end)."""
    buf, lineno, skipping = b"", 0, False
    while block := stream.read(BLOCK):
        buf += block
        start = 0
        while (end := buf.find(b"\n", start)) != -1:
            lineno += 1
            yield lineno, (None if skipping else buf[start:end])
            skipping = False
            start = end + 1
        buf = buf[start:]
        if len(buf) > MAX_LINE:  # keep counting, but stop holding the giant line
            buf, skipping = b"", True
    if buf or skipping:
        lineno += 1
        yield lineno, (None if skipping else buf)


class Record(NamedTuple):
    lineno: int
    obj: Any  # the decoded line; None when it could not be decoded (``error`` says why)
    error: str
    bools: bool  # the line may hold a JSON true/false (the grid check must then look for them)


def records(stream: IO[bytes]) -> Iterator[Record]:
    """A ``Record`` for every non-blank line of a JSONL stream."""
    for lineno, line in _lines(stream):
        if line is None:
            yield Record(lineno, None, f"line longer than {MAX_LINE} bytes", False)
            continue
        if not line.strip():
            continue
        try:
            yield Record(lineno, _decoder.decode(line), "", may_have_bools(line))
        except msgspec.DecodeError as e:
            yield Record(lineno, None, f"not valid JSON: {e}", False)


def member_records(member: Member) -> Iterator[Record]:
    """``records`` over a member; a member that cannot be opened raises ``TaskFormatError`` first."""
    try:
        stream = member.stream()
    except OSError as e:
        raise TaskFormatError(TOO_LARGE, f"cannot read the file: {e.strerror or e}") from None
    with stream:
        yield from records(stream)
