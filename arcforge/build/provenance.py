"""The provenance file of a built dataset: ``OUT/provenance.json``.

A build writes it (``write_provenance``); ``arcforge publish`` reads it back (``read_provenance``) to gate
licenses and uploads it next to the shards, so anyone holding the Hub repo can tell exactly which upstream
commits (and content digests) and which build/dedup options produced it.

The file is deterministic (sorted keys, no timestamp): rebuilding the same inputs with the same options
gives a byte-identical file, so a re-publish does not create a spurious change on the Hub.

Format (``format_version`` 1)::

    {
      "format_version": 1,
      "arcforge_version": "0.1.0",
      "sources": [ {"name": "arc_agi_1", "repo": "fchollet/ARC-AGI", "commit": "3990...",
                    "digest": "sha256:...", "license": "Apache-2.0", "citation": "...", ...}, ... ],
      "options": { ...build and dedup options, JSON values... }
    }

A Hub source pinned by a branch or tag also has ``revision``; its ``commit`` is the one locked on its first
fetch, or ``"unresolved"`` when it was fetched from a folder mirror (which cannot say which commit it
holds: its files are pinned by ``digest`` alone).

``name`` must equal the shard folder / ``source`` column of that source's tasks. Keys beyond the required
ones (``name``, ``repo``, ``commit``, ``license``) and the optional ``digest``/``citation`` are kept as-is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcforge.errors import BuildError

PROVENANCE_FILE = "provenance.json"
FORMAT_VERSION = 1
REQUIRED_SOURCE_KEYS = ("name", "repo", "commit", "license")
UNKNOWN_LICENSE = "unknown"
UNRESOLVED = "unresolved"  # the commit of a source pinned by revision, fetched from a mirror


@dataclass(frozen=True)
class SourceProvenance:
    """Where one source's tasks came from."""

    name: str  # the source name: shard folder and `source` column
    repo: str  # upstream "owner/repo" (or a description for generated sources)
    commit: str  # pinned upstream commit (``UNRESOLVED``: see the module docstring)
    license: str  # SPDX id or "unknown"
    digest: str = ""  # content digest of the fetched files (e.g. "sha256:..."), "" if none
    citation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # any other keys the build recorded

    @property
    def pinned(self) -> str:
        """``repo@commit``, or for a revision whose commit is unresolved, ``repo@revision (commit
        unresolved, digest ...)``: never a branch name as if it were a pin."""
        if self.commit != UNRESOLVED:
            return f"{self.repo}@{self.commit}"
        revision = self.extra.get("revision", "?")
        return f"{self.repo}@{revision} (commit unresolved, {self.digest or 'no digest'})"

    @property
    def license_unknown(self) -> bool:
        return self.license.strip().lower() in ("", UNKNOWN_LICENSE)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.extra)
        d.update(
            name=self.name,
            repo=self.repo,
            commit=self.commit,
            license=self.license,
            digest=self.digest,
            citation=self.citation,
        )
        return d


@dataclass(frozen=True)
class Provenance:
    """The whole provenance file."""

    arcforge_version: str
    sources: tuple[SourceProvenance, ...]
    options: dict[str, Any]
    format_version: int = FORMAT_VERSION

    def source(self, name: str) -> SourceProvenance | None:
        return next((s for s in self.sources if s.name == name), None)

    @property
    def unknown_license_sources(self) -> list[SourceProvenance]:
        return [s for s in self.sources if s.license_unknown]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "arcforge_version": self.arcforge_version,
            "sources": [s.to_dict() for s in self.sources],
            "options": self.options,
        }


def _source_from_dict(d: Any, where: str) -> SourceProvenance:
    if not isinstance(d, Mapping):
        raise BuildError(f"{where}: a source entry is {type(d).__name__}, expected an object")
    missing = [k for k in REQUIRED_SOURCE_KEYS if not isinstance(d.get(k), str) or not d.get(k)]
    if missing:
        raise BuildError(
            f"{where}: source {d.get('name', '?')!r} lacks {', '.join(missing)}",
            hint="every source needs a non-empty name, repo, commit and license ('unknown' if so)",
        )
    known = {*REQUIRED_SOURCE_KEYS, "digest", "citation"}
    return SourceProvenance(
        name=d["name"],
        repo=d["repo"],
        commit=d["commit"],
        license=d["license"],
        digest=str(d.get("digest") or ""),
        citation=str(d.get("citation") or ""),
        extra={k: v for k, v in d.items() if k not in known},
    )


def write_provenance(out: Path, *, sources: list[dict[str, Any]], options: dict[str, Any]) -> Path:
    """Write ``out/provenance.json`` atomically; returns its path.

    ``sources``: one dict per source with ``name``, ``repo``, ``commit``, ``license`` (required) and
    ``digest``, ``citation`` (optional) plus any other JSON keys. ``options``: the build and dedup options
    (JSON-serialisable values; Paths are written as strings). Sources are stored sorted by name.
    """
    from arcforge import __version__

    where = str(Path(out) / PROVENANCE_FILE)
    parsed = sorted((_source_from_dict(s, where) for s in sources), key=lambda s: s.name)
    names = [s.name for s in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"{where}: source names listed twice: {', '.join(dupes)}")
    prov = Provenance(arcforge_version=__version__, sources=tuple(parsed), options=dict(options))
    text = json.dumps(prov.to_dict(), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    path = Path(out) / PROVENANCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PROVENANCE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written file
    return path


def read_provenance(out: Path) -> Provenance:
    """Read and validate ``out/provenance.json``; a missing or malformed file raises ``BuildError``."""
    path = Path(out) / PROVENANCE_FILE
    if not path.is_file():
        raise BuildError(
            f"{path}: provenance file not found",
            hint="build the dataset with `arcforge build --out DIR` (it writes provenance.json)",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BuildError(f"{path}: not valid JSON: {e}", hint="rebuild the dataset") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("sources"), list):
        raise BuildError(f"{path}: expected an object with a 'sources' list", hint="rebuild the dataset")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise BuildError(
            f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})",
            hint="rebuild the dataset with this arcforge version",
        )
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise BuildError(f"{path}: 'options' is {type(options).__name__}, expected an object")
    return Provenance(
        arcforge_version=str(data.get("arcforge_version", "")),
        sources=tuple(_source_from_dict(s, str(path)) for s in data["sources"]),
        options=dict(options),
        format_version=version,
    )
