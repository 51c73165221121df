"""The ``hub`` source kind: files of a Hugging Face dataset repository at a pinned revision.

The manifest's ``repo`` is the dataset's ``org/name`` and ``commit`` its full 40-hex revision (a Hub commit
id), or ``revision`` a branch or tag, resolved to its commit and locked on the first fetch (see
``arcforge.sources.lock``); ``files`` picks the repository files to keep; ``[[tasks]]`` read them with a
format plug-in as for a GitHub repository (``barc_jsonl``, ``simon_arc``, ``arc_parquet``). Each kept file's
sha256 is pinned in ``digests.lock`` (``sha256 = { path = hex }``) next to the source digest, and every
file is checked when it arrives.

The optional ``[hub]`` table::

    [hub]
    repo_type = "dataset"      # the only kind of Hub repository a source can be

Fetching (``arcforge.sources.hub_fetch``): from a folder mirror at ``<mirror>/hf/<org>/<name>/<files>``,
else from the Hub with huggingface_hub (``arcforge.hub.download``), resumable, under the fetch deadlines.
The cache is ``$ARCFORGE_HOME/sources/hf/<org>/<name>/<commit>/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arcforge.errors import ManifestError
from arcforge.sources.kinds import register

REPO_TYPES = ("dataset",)


@register("hub")
class HubKind:
    name = "hub"
    table = "hub"

    def check(self, settings: Mapping[str, Any], where: Path) -> dict[str, Any]:
        unknown = set(settings) - {"repo_type"}
        if unknown:
            raise ManifestError(f"{where}: [hub] has unknown field(s) {', '.join(sorted(unknown))}")
        repo_type = settings.get("repo_type", "dataset")
        if repo_type not in REPO_TYPES:
            raise ManifestError(
                f"{where}: [hub] 'repo_type' = {repo_type!r} must be one of {', '.join(REPO_TYPES)}"
            )
        return {"repo_type": repo_type}
