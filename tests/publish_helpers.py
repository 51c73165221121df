"""Helpers for the publish tests: a small built dataset folder made from hand-made tasks, without the
build pipeline (so these tests depend neither on it nor on the real upstream data), and an isolated
Hugging Face environment. The source names, repos and licenses are the shipped manifests' (arc_agi_1 is
Apache-2.0, arc_community's license is unknown), so the license gate sees real provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from arcforge.build import reports
from arcforge.build.dedup import DUPLICATES_SCHEMA, EXCLUDED_SCHEMA
from arcforge.build.provenance import write_provenance
from arcforge.build.shard_writer import write_shards
from arcforge.sources.manifest import load_manifests
from arcforge.task import QUARANTINE_SCHEMA, Task, parse_task_object, tasks_to_table

SECRET_TOKEN = "hf_arcforgeTESTtoken0123456789SECRET"  # must never appear in any output or file

# (source, split, folder inside the upstream repo, how many tasks)
PICKS = {
    "arc_agi_1": [("training", "data/training", 6), ("evaluation", "data/evaluation", 3)],
    "arc_community": [("training", "levels/yk", 4)],
}


def _task_object(seed: int, side: int = 15, pairs: int = 5) -> dict:
    """A task whose rule is 'mirror left-right' (15x15 grids: three tasks fill more than one 6 kB shard)."""
    rng = np.random.default_rng(seed)
    grids = [rng.integers(0, 10, size=(side, side)).tolist() for _ in range(pairs)]
    ps = [{"input": g, "output": [row[::-1] for row in g]} for g in grids]
    return {"train": ps[:-1], "test": ps[-1:]}


def _tasks(name: str) -> list[Task]:
    m = load_manifests()[name]
    out = []
    for k, (split, folder, n) in enumerate(PICKS[name]):
        for i in range(n):
            side = 15 if split == "evaluation" else 9  # sized so that each split fills exactly two shards
            train, test, extra = parse_task_object(_task_object(1000 * k + i + sum(map(ord, name)), side))
            rel = f"{folder}/{i:08x}.json"
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


def build_out(
    out: Path, sources: tuple[str, ...] = ("arc_agi_1", "arc_community"), *, shard_bytes: int = 6_000
) -> Path:
    """Write shards (several per split: small ``shard_bytes``), card, reports and provenance into ``out``."""
    tasks = [t for name in sources for t in _tasks(name)]
    write_shards(tasks_to_table(tasks), out, shard_bytes=shard_bytes)
    (out / "README.md").write_text(card_text(list(sources)), encoding="utf-8")
    reports.write_report(
        pa.Table.from_pylist(
            [
                {
                    "source": "arc_agi_1",
                    "path": "data/training/broken.json",
                    "reason": "invalid_json",
                    "detail": "line 1",
                    "split": "training",
                }
            ],
            schema=QUARANTINE_SCHEMA,
        ),
        reports.report_path(out, "quarantine"),
    )
    reports.write_report(
        pa.Table.from_pylist(
            [
                {
                    "id": "arc_agi_1/training/x",
                    "source": "arc_agi_1",
                    "split": "training",
                    "eval_ids": ["arc_agi_1/evaluation/y"],
                    "level": "exact",
                    "similarity": 1.0,
                    "eval_sources": ["arc_agi_1"],
                }
            ],
            schema=EXCLUDED_SCHEMA,
        ),
        reports.report_path(out, "excluded"),
    )
    reports.write_report(
        pa.Table.from_pylist(
            [
                {
                    "kept_id": "arc_agi_1/training/w",
                    "kept_source": "arc_agi_1",
                    "dropped_id": "arc_agi_1/training/z",
                    "dropped_source": "arc_agi_1",
                    "level": "exact",
                    "kept_split": "training",
                    "dropped_split": "training",
                }
            ],
            schema=DUPLICATES_SCHEMA,
        ),
        reports.report_path(out, "duplicates"),
    )
    manifests = load_manifests()
    write_provenance(
        out,
        sources=[
            {
                "name": n,
                "repo": manifests[n].repo,
                "commit": manifests[n].commit,
                "license": manifests[n].license,
                "digest": f"sha256:{n}-digest",
                "citation": manifests[n].citation,
            }
            for n in sources
        ],
        options={"exclude_eval": True, "dedup": "exact", "max_grid": None},
    )
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


class FakeHub:
    """A stateful stand-in for ``HfApi`` (the Hub is the network boundary): one dataset repo held in memory,
    with branches, commits (each a full snapshot ``{path: bytes}``), pull-request refs and tags, and the
    Hub's rules that publishing relies on: a commit with a stale ``parent_commit`` is refused (HTTP 412),
    an existing tag cannot be created again (409), a missing branch is ``RevisionNotFound``.

    Tests assert what the repo holds afterwards, not which calls were made. ``before_commit`` runs just
    before a commit is applied (to simulate someone else committing at that moment).
    """

    def __init__(self, repo_id: str, files: dict[str, bytes] | None = None, *, private: bool = False) -> None:
        self.repo_id, self.private = repo_id, private
        self.exists = files is not None
        self.commits: dict[str, dict[str, bytes]] = {}
        self.branches: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.prs: list[str] = []
        self.messages: list[tuple[str, str | None]] = []  # (title, description) of each commit made
        self.before_commit = None
        if files is not None:
            self.branches["main"] = self._snapshot(dict(files))

    def _snapshot(self, files: dict[str, bytes]) -> str:
        import hashlib

        oid = hashlib.sha1(repr((len(self.commits), sorted(files.items()))).encode()).hexdigest()
        self.commits[oid] = files
        return oid

    def _error(self, status: int, **headers):
        import httpx2
        from huggingface_hub.utils import hf_raise_for_status

        resp = httpx2.Response(
            status,
            headers=headers,
            request=httpx2.Request("POST", f"https://huggingface.co/api/datasets/{self.repo_id}"),
        )
        try:
            hf_raise_for_status(resp)
        except Exception as e:
            return e
        raise AssertionError("no error")

    def _resolve(self, revision: str) -> str:
        if not self.exists:
            raise self._error(404, **{"X-Error-Code": "RepoNotFound"})
        if revision in self.commits:
            return revision
        if revision in self.branches:
            return self.branches[revision]
        raise self._error(404, **{"X-Error-Code": "RevisionNotFound"})

    def files(self, revision: str = "main") -> dict[str, bytes]:
        return self.commits[self._resolve(revision)]

    # --- the HfApi methods publish uses ---------------------------------------------------------------------
    def create_repo(self, repo_id, *, repo_type, private=False, exist_ok=False):
        assert (repo_id, repo_type) == (self.repo_id, "dataset")
        if not self.exists:
            self.exists, self.private = True, private
            self.branches["main"] = self._snapshot({})

    def create_branch(self, repo_id, *, branch, repo_type, exist_ok=False):
        self.branches.setdefault(branch, self._resolve("main"))

    def repo_info(self, repo_id, *, repo_type, revision="main", timeout=None):
        from huggingface_hub.hf_api import DatasetInfo

        return DatasetInfo(id=repo_id, sha=self._resolve(revision), private=self.private)

    def list_repo_files(self, repo_id, *, repo_type, revision="main"):
        return sorted(self.files(revision))

    def create_commit(
        self,
        repo_id,
        *,
        operations,
        commit_message,
        commit_description=None,
        repo_type,
        revision="main",
        create_pr=False,
        parent_commit=None,
    ):
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.hf_api import CommitInfo

        if self.before_commit is not None:
            self.before_commit(self)
        head = self._resolve(revision)
        if parent_commit is not None and parent_commit != head:
            raise self._error(412, **{"X-Error-Message": "A commit has happened since."})
        files = dict(self.commits[head])
        for op in operations:
            if isinstance(op, CommitOperationAdd):
                files[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()
            else:
                files.pop(op.path_in_repo)
        oid = self._snapshot(files)
        self.messages.append((commit_message, commit_description))
        url = f"https://huggingface.co/datasets/{repo_id}/commit/{oid}"
        if create_pr:
            self.prs.append(oid)
            return CommitInfo(
                commit_url=url,
                commit_message=commit_message,
                commit_description="",
                oid=oid,
                pr_url=f"https://huggingface.co/datasets/{repo_id}/discussions/{len(self.prs)}",
            )
        self.branches[revision] = oid
        return CommitInfo(commit_url=url, commit_message=commit_message, commit_description="", oid=oid)

    def create_tag(self, repo_id, *, tag, tag_message=None, revision=None, repo_type):
        if tag in self.tags:
            raise self._error(409)
        self.tags[tag] = self._resolve(revision or "main")
