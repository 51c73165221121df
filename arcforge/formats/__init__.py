"""Upstream formats as plug-ins, registered by name.

A format turns one file (a ``Member``: a path in a repo, possibly inside a zip) into tasks. It yields
``RawTask`` for each task it finds, ``Rejected`` for a part of the file that is broken (the rest of the
file still counts), and ``Skipped`` for files that are not tasks at all (solution programs, user traces).
A file that is broken as a whole raises ``TaskFormatError``; the build quarantines it with the reason.

A format with a class attribute ``streaming = True`` reads its member piece by piece (``Member.stream``:
JSONL, Parquet files of any size) and never raises after its first item; the build consumes its items as
they come instead of listing them first. One that is also ``splittable`` reads the part of its file
given as ``options["part"]`` (``arcforge.formats.jsonl.Part``): the build cuts a big file into parts that
workers read in parallel.

Adding a layout = one new module here that calls ``@register("name")`` + one manifest. ``detect`` picks a
format for a single file of a user's folder (``build --local``) by sniffing its parsed JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar, Protocol

from arcforge.errors import FormatError
from arcforge.formats.registry import Registry
from arcforge.task import Pair, loads_json

_UNPARSED: Any = object()


@dataclass(frozen=True)
class Member:
    """One file to read. ``path`` is repo-relative; inside a zip it is ``outer.zip!inner/path``.

    ``parsed``: its JSON when already parsed (``detect`` read it first), so that it is parsed only once.
    ``open``: a binary stream of its bytes, for formats that read a file of any size piece by piece
    (JSONL, Parquet); ``None`` where only ``read`` exists (``stream`` then wraps its bytes)."""

    path: str
    read: Callable[[], bytes] = field(repr=False, compare=False)
    parsed: Any = field(default=_UNPARSED, repr=False, compare=False)
    open: Callable[[], IO[bytes]] | None = field(default=None, repr=False, compare=False)

    def stream(self) -> IO[bytes]:
        """A binary stream of the member (its file when there is one, else its bytes in memory)."""
        if self.open is not None:
            return self.open()
        import io

        return io.BytesIO(self.read())

    def load(self) -> tuple[bytes, Any]:
        """The member's bytes and their JSON (``TaskFormatError`` if that is not valid JSON)."""
        data = self.read()
        return data, (loads_json(data, self.path) if self.parsed is _UNPARSED else self.parsed)

    @property
    def inner_path(self) -> str:
        """The path that ids are made from: the member path inside a zip, else the repo path."""
        return self.path.split("!", 1)[1] if "!" in self.path else self.path


@dataclass
class RawTask:
    """A parsed task before it gets its id/provenance. ``key`` is appended to the member's id ('' = none)."""

    key: str
    train: list[Pair]
    test: list[Pair]
    extra: dict[str, Any] = field(default_factory=dict)
    quality: str = ""  # upstream's annotation of the task, if any
    derived_from: tuple[str, ...] = ()  # ids of the tasks it was made from, if upstream says


@dataclass(frozen=True)
class Rejected:
    """Part of a file failed validation; quarantined as ``<member>/<key>``."""

    key: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Skipped:
    """The file is not a task (and that is expected); counted in the build report, not quarantined."""

    reason: str


Item = RawTask | Rejected | Skipped


class Format(Protocol):
    name: ClassVar[str]

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        """Parse one member. Raise ``TaskFormatError`` if the whole file is unusable."""
        ...

    def sniff(self, path: str, obj: Any) -> bool:
        """True if this parsed JSON document looks like this format (used by ``detect``)."""
        ...


# Order matters for ``detect``: the first format whose sniff() accepts a file wins.
_BUILTIN_MODULES = (
    "standard",
    "mini_arc",
    "barc_list",
    "iparc",
    "re_arc",
    "barc_jsonl",
    "simon_arc",
    "arc_parquet",
    "barc_problem",
)
_FORMATS: Registry[type[Format]] = Registry(
    "format", "formats", FormatError, tuple(f"arcforge.formats.{m}" for m in _BUILTIN_MODULES)
)
register = _FORMATS.register
names = _FORMATS.names


def get(name: str) -> Format:
    return _FORMATS.get(name)()


def detect(path: str, obj: Any) -> Format | None:
    """The first registered format (built-ins in their fixed order) that accepts this document."""
    registered = _FORMATS.classes()
    for name in (*_BUILTIN_MODULES, *sorted(set(registered) - set(_BUILTIN_MODULES))):
        fmt = registered.get(name)
        if fmt is not None and fmt().sniff(path, obj):
            return fmt()
    return None
