"""Reading JSON Lines files of any size: one record per line, decoded with msgspec, in bounded memory.

``records`` reads the stream in blocks of ``BLOCK`` bytes and decodes line by line, so memory is one block
plus the longest line, whatever the file's size. A line that is not valid JSON (or too long) is reported
as a ``Record`` without its object, with the reason, and the file goes on; blank lines are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any, NamedTuple

import msgspec

from arcforge.formats import Member
from arcforge.task import TOO_LARGE, TaskFormatError, may_have_bools

BLOCK = 1 << 20  # bytes read at a time
MAX_LINE = 64 << 20  # a longer line is refused (one record; the largest upstream lines are a few MB)

_decoder = msgspec.json.Decoder()


def _lines(stream: IO[bytes], part: Part | None = None) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line bytes) for each line (of ``part`` only, when given); ``None`` for a line over
    ``MAX_LINE`` (skipped to its end)."""
    lineno, offset, stop = 0, 0, None
    if part is not None:
        stream.seek(part.start)
        lineno, offset, stop = part.first_line - 1, part.start, part.end
    buf, skipping = b"", False
    while block := stream.read(BLOCK):
        buf += block
        start = 0
        while (end := buf.find(b"\n", start)) != -1:
            if stop is not None and offset + start >= stop:
                return
            lineno += 1
            yield lineno, (None if skipping else buf[start:end])
            skipping = False
            start = end + 1
        buf, offset = buf[start:], offset + start
        if len(buf) > MAX_LINE:  # keep counting, but stop holding the giant line
            offset += len(buf)
            buf, skipping = b"", True
    if (buf or skipping) and (stop is None or offset < stop):
        lineno += 1
        yield lineno, (None if skipping else buf)


class Part(NamedTuple):
    """Lines of a file that start at byte ``start`` up to (not including) byte ``end``; the first one is
    line ``first_line`` of the file. A multi-GB file is read as several parts, in parallel."""

    start: int
    end: int
    first_line: int


def split(path: str, part_bytes: int) -> list[Part]:
    """Cut a file into parts of about ``part_bytes`` at line starts, in one pass counting newlines."""
    parts: list[Part] = []
    start, start_line = 0, 1
    pos, line = 0, 1  # the offset of the block read, and the number of the line that byte is in
    cut = part_bytes
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            at = 0  # newlines before block[at] are counted in `line`
            while pos + len(block) > cut:  # a cut falls in this block: at the first newline from there
                nl = block.find(b"\n", max(at, cut - pos))
                if nl == -1:
                    break
                line += block.count(b"\n", at, nl + 1)
                at = nl + 1
                parts.append(Part(start, pos + at, start_line))
                start, start_line, cut = pos + at, line, pos + at + part_bytes
            line += block.count(b"\n", at)
            pos += len(block)
    if pos > start or not parts:
        parts.append(Part(start, pos, start_line))
    return parts


class Record(NamedTuple):
    lineno: int
    obj: Any  # the decoded line; None when it could not be decoded (``error`` says why)
    error: str
    bools: bool  # the line may hold a JSON true/false (the grid check must then look for them)


def records(stream: IO[bytes], part: Part | None = None) -> Iterator[Record]:
    """A ``Record`` for every non-blank line of a JSONL stream (of one ``Part`` of it, when given)."""
    for lineno, line in _lines(stream, part):
        if line is None:
            yield Record(lineno, None, f"line longer than {MAX_LINE} bytes", False)
            continue
        if not line.strip():
            continue
        try:
            yield Record(lineno, _decoder.decode(line), "", may_have_bools(line))
        except msgspec.DecodeError as e:
            yield Record(lineno, None, f"not valid JSON: {e}", False)


def member_records(member: Member, options: Mapping[str, Any]) -> Iterator[Record]:
    """``records`` over a member (its part ``options["part"]`` when the build cut it into parts); a member
    that cannot be opened raises ``TaskFormatError`` first."""
    part = Part(*options["part"]) if options.get("part") else None
    try:
        stream = member.stream()
    except OSError as e:
        raise TaskFormatError(TOO_LARGE, f"cannot read the file: {e.strerror or e}") from None
    with stream:
        yield from records(stream, part)
