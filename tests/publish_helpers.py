"""Helpers for the publish tests: a small built dataset folder made from real upstream tasks, without the
build pipeline (so these tests do not depend on it), and an isolated Hugging Face environment."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from arcforge.manifest import load_manifests
from arcforge.provenance import write_provenance
from arcforge.shards import write_shards, write_table
from arcforge.task import QUARANTINE_SCHEMA, Task, loads_json, parse_task_object, tasks_to_table

SECRET_TOKEN = "hf_arcforgeTESTtoken0123456789SECRET"  # must never appear in any output or file

# (source, split, folder inside the upstream repo, how many tasks)
PICKS = {
    "arc_agi_1": [("training", "data/training", 6), ("evaluation", "data/evaluation", 3)],
    "arc_community": [("training", "levels/yk", 4)],
}


def _tasks(shared: Path, name: str) -> list[Task]:
    m = load_manifests()[name]
    out = []
    for split, folder, n in PICKS[name]:
        for f in sorted((shared / m.owner / m.repo_name / folder).glob("*.json"))[:n]:
            train, test, extra = parse_task_object(loads_json(f.read_bytes(), str(f)))
            rel = f.relative_to(shared / m.owner / m.repo_name).as_posix()
            tid = f"{name}/{rel.removeprefix(m.id_root + '/').removesuffix('.json')}"
            out.append(Task(tid, name, split, train, test, m.repo, m.commit, rel, m.license, extra))
    return out


def card_text(sources: list[str]) -> str:
    """A dataset card like the build writes: one config per source, one split per shard prefix."""
    manifests = load_manifests()
    lines = ["---", "license: other", "pretty_name: arcforge test build", "configs:"]
    for name in sources:
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, _, _ in PICKS[name]:
            lines += [f"  - split: {split}", f"    path: {name}/{split}-*.parquet"]
    lines += ["---", "", "# arcforge test build", "", "| source | license |", "|---|---|"]
    lines += [f"| {n} | {manifests[n].license} |" for n in sources]
    return "\n".join(lines) + "\n"


def build_out(out: Path, shared: Path, sources: tuple[str, ...] = ("arc_agi_1", "arc_community"),
              *, shard_bytes: int = 6_000) -> Path:
    """Write shards (several per split: small ``shard_bytes``), card, reports and provenance into ``out``."""
    tasks = [t for name in sources for t in _tasks(shared, name)]
    write_shards(tasks_to_table(tasks), out, shard_bytes=shard_bytes)
    (out / "README.md").write_text(card_text(list(sources)), encoding="utf-8")
    write_table(pa.Table.from_pylist(
        [{"source": "arc_agi_1", "path": "data/training/broken.json", "reason": "invalid_json",
          "detail": "line 1"}], schema=QUARANTINE_SCHEMA), out / "quarantine.parquet")
    write_table(pa.table({"id": ["arc_agi_1/training/x"], "reason": ["eval_exact"],
                          "match": ["arc_agi_1/evaluation/y"]}), out / "excluded.parquet")
    write_table(pa.table({"id": ["arc_agi_1/training/z"], "kept": ["arc_agi_1/training/w"]}),
                out / "duplicates.parquet")
    manifests = load_manifests()
    write_provenance(out, sources=[
        {"name": n, "repo": manifests[n].repo, "commit": manifests[n].commit, "license": manifests[n].license,
         "digest": f"sha256:{n}-digest", "citation": manifests[n].citation} for n in sources
    ], options={"exclude_eval": True, "dedup": "exact", "max_grid": None})
    return out


@pytest.fixture()
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated Hugging Face environment: temp HF_HOME and caches, HF_HUB_OFFLINE=1, a fake HF_TOKEN.

    huggingface_hub reads these at import, so its constants are patched as well as the environment.
    """
    import huggingface_hub.constants as hc

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_TOKEN", SECRET_TOKEN)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.delenv("ARCFORGE_DEBUG", raising=False)
    monkeypatch.setattr(hc, "HF_HOME", str(home))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hc, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hc, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    return home
