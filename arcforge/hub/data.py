"""Where ``arcforge train --data SPEC`` finds its shards: a local folder, or a dataset repo on the Hub.

``SPEC`` is one of

- a folder (the ``--out`` of ``arcforge build``, or a ``--to-dir`` export): used as is;
- ``ORG/NAME`` or ``ORG/NAME@REVISION``: a Hub dataset repo (when no such local folder exists);
- ``hf://datasets/ORG/NAME`` or ``hf://datasets/ORG/NAME@REVISION``.

A Hub dataset is downloaded with huggingface_hub's ``snapshot_download`` into the Hugging Face cache
(``HF_HOME``/``HF_HUB_CACHE``), so a second run reuses it, also offline (``HF_HUB_OFFLINE=1``). This module
itself does not import huggingface_hub: only a Hub spec imports ``arcforge.hub.publish``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from arcforge.errors import FetchError, ShardError
from arcforge.shards import list_shards

_REPO = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
_HF_URI = re.compile(rf"^hf://datasets/(?P<repo>{_REPO})(?:@(?P<rev>[^/@]+))?/?$")
_BARE = re.compile(rf"^(?P<repo>{_REPO})(?:@(?P<rev>[^/@]+))?$")


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` value: either ``path`` (local) or ``repo_id`` (+ ``revision``) on the Hub."""

    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def is_hub(self) -> bool:
        return self.repo_id is not None


def parse_data_spec(spec: str | Path) -> DataSpec:
    """Classify ``spec``. An existing local folder always wins over an ``ORG/NAME`` reading."""
    if isinstance(spec, Path):
        return DataSpec(path=spec)
    text = spec.strip()
    if text.startswith("hf://"):
        m = _HF_URI.match(text)
        if not m:
            raise FetchError(
                f"{spec!r}: not a Hub dataset URI",
                hint="use hf://datasets/ORG/NAME or hf://datasets/ORG/NAME@REVISION",
            )
        return DataSpec(repo_id=m["repo"], revision=m["rev"])
    local = Path(text).expanduser()
    if local.exists():
        return DataSpec(path=local)
    m = _BARE.match(text)
    if m and not text.startswith((".", "/", "~")):
        return DataSpec(repo_id=m["repo"], revision=m["rev"])
    return DataSpec(path=local)


def resolve_data(spec: str | Path, *, cache_dir: Path | None = None, endpoint: str | None = None) -> Path:
    """The local folder holding the shards of ``spec`` (downloading a Hub dataset into the HF cache).

    Raises ``ShardError`` for a missing local folder or a folder/repo without arcforge shards, and
    ``FetchError``/``SourceUnavailableError`` when the Hub repo cannot be had.
    """
    parsed = parse_data_spec(spec)
    if parsed.is_hub:
        from arcforge.hub.publish import download_dataset  # the only huggingface_hub importer

        assert parsed.repo_id is not None
        root = download_dataset(parsed.repo_id, parsed.revision, cache_dir=cache_dir, endpoint=endpoint)
        label = f"hf://datasets/{parsed.repo_id}" + (f"@{parsed.revision}" if parsed.revision else "")
    else:
        assert parsed.path is not None
        root = parsed.path
        label = str(root)
        if not root.is_dir():
            raise ShardError(
                f"{root}: dataset folder not found",
                hint="pass a folder built by `arcforge build --out DIR`, or ORG/NAME of a published dataset",
            )
    if not list_shards(root):
        raise ShardError(
            f"{label}: no arcforge shards (<source>/<split>-00000-of-0000N.parquet) in {root}",
            hint="is this a dataset published by `arcforge publish`?",
        )
    return root
