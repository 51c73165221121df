"""Integration with a real Hub endpoint. Runs only when HF_TOKEN and ARCFORGE_HUB_ENDPOINT are set (e.g.
ARCFORGE_HUB_ENDPOINT=https://hub-ci.huggingface.co with a token of that CI Hub); creates a private repo
under the token's user, publishes twice (the second build re-shards, so old shards must be deleted in the
same commit), reads it back with ``resolve_data``, and deletes the repo."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from arcforge.hub.data import resolve_data
from arcforge.shards import read_table
from tests.publish_helpers import build_out

ENDPOINT = os.environ.get("ARCFORGE_HUB_ENDPOINT")
TOKEN = os.environ.get("HF_TOKEN")

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(
        not (ENDPOINT and TOKEN), reason="needs HF_TOKEN and ARCFORGE_HUB_ENDPOINT (a real Hub)"
    ),
]


def test_publish_twice_then_read_back(tmp_path: Path):
    from huggingface_hub import HfApi

    from arcforge.hub import publish as pub

    api = HfApi(endpoint=ENDPOINT, token=TOKEN)
    repo_id = f"{api.whoami()['name']}/arcforge-test-{uuid.uuid4().hex[:8]}"
    try:
        first = build_out(tmp_path / "v1", sources=("arc_agi_1",), shard_bytes=6_000)
        res1 = pub.publish(first, pub.PublishOptions(repo_id, private=True, tag="v1"), api=api)
        files1 = set(api.list_repo_files(repo_id, repo_type="dataset", revision=res1.commit_oid))
        assert {op.path_in_repo for op in res1.operations} <= files1
        assert "v1" in [t.name for t in api.list_repo_refs(repo_id, repo_type="dataset").tags]

        second = build_out(tmp_path / "v2", sources=("arc_agi_1",), shard_bytes=1 << 30)
        res2 = pub.publish(second, pub.PublishOptions(repo_id, private=True), api=api)
        assert res2.parent_commit == res1.commit_oid
        deleted = {op.path_in_repo for op in res2.operations if op.kind == "delete"}
        assert deleted == {
            "arc_agi_1/evaluation-00001-of-00002.parquet",
            "arc_agi_1/training-00001-of-00002.parquet",
            "arc_agi_1/evaluation-00000-of-00002.parquet",
            "arc_agi_1/training-00000-of-00002.parquet",
        }
        files2 = set(api.list_repo_files(repo_id, repo_type="dataset", revision=res2.commit_oid))
        assert files2 - {".gitattributes"} == {op.path_in_repo for op in res2.operations if op.kind == "add"}

        got = resolve_data(repo_id, cache_dir=tmp_path / "cache", endpoint=ENDPOINT)
        assert read_table(got).equals(read_table(second))
    finally:
        api.delete_repo(repo_id, repo_type="dataset", missing_ok=True)
