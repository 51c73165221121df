"""The publisher against an autospec'd ``HfApi`` (the Hub is the network boundary): the exact calls and
arguments, error mapping, the token never leaking, and the `arcforge publish` command."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import call, create_autospec

import httpx2
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.hf_api import CommitInfo, DatasetInfo
from huggingface_hub.utils import hf_raise_for_status
from typer.testing import CliRunner

from arcforge import __version__
from arcforge.cli.app import app
from arcforge.errors import PublishError
from arcforge.hub import publish as pub
from tests.publish_helpers import SECRET_TOKEN, FakeHub, build_out, hf_env  # noqa: F401  (fixture)

REPO = "arc-org/arc-corpus"
HEAD = "1" * 40
NEW = "2" * 40
TREE = [
    "README.md",
    "arc_agi_1/evaluation-00000-of-00002.parquet",
    "arc_agi_1/evaluation-00001-of-00002.parquet",
    "arc_agi_1/training-00000-of-00002.parquet",
    "arc_agi_1/training-00001-of-00002.parquet",
    "provenance.json",
    "reports/duplicates.jsonl",
    "reports/excluded.jsonl",
    "reports/quarantine.jsonl",
]
REMOTE = [
    ".gitattributes",
    "README.md",
    "arc_agi_1/training-00000-of-00001.parquet",
    "barc/training-00000-of-00001.parquet",
    "provenance.json",
]
STALE = ["arc_agi_1/training-00000-of-00001.parquet", "barc/training-00000-of-00001.parquet"]


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    """A build with known licenses only (arc_agi_1, Apache-2.0)."""
    return build_out(tmp_path / "out", sources=("arc_agi_1",))


@pytest.fixture()
def api(hf_env: Path):  # noqa: F811
    api = create_autospec(HfApi, instance=True)
    api.repo_info.return_value = DatasetInfo(id=REPO, sha=HEAD, private=False)
    api.list_repo_files.return_value = list(REMOTE)
    api.create_commit.return_value = CommitInfo(
        commit_url=f"https://huggingface.co/datasets/{REPO}/commit/{NEW}",
        commit_message="m",
        commit_description="",
        oid=NEW,
    )
    return api


def calls(api) -> list:
    """``api.method_calls`` with create_commit's operations as comparable tuples (huggingface_hub's
    ``CommitOperationAdd`` computes its upload info lazily, so two equal adds may not compare equal)."""

    def norm(op):
        if isinstance(op, CommitOperationAdd):
            return ("add", op.path_in_repo, op.path_or_fileobj)
        assert isinstance(op, CommitOperationDelete) and not op.is_folder
        return ("delete", op.path_in_repo, None)

    out = []
    for c in api.method_calls:
        name, args, kwargs = c
        if name == "create_commit":
            kwargs = {**kwargs, "operations": [norm(op) for op in kwargs["operations"]]}
        out.append(getattr(call, name)(*args, **kwargs))
    return out


def hub_error(status: int, method: str = "POST", path: str = f"/api/datasets/{REPO}/commit/main", **headers):
    """The exception huggingface_hub itself raises for such a Hub response."""
    resp = httpx2.Response(
        status, request=httpx2.Request(method, f"https://huggingface.co{path}"), headers=headers
    )
    try:
        hf_raise_for_status(resp)
    except Exception as e:
        return e
    raise AssertionError("no error raised")


# --- what the repo holds afterwards (a stateful fake Hub) ---------------------------------------------------
def local_files(out: Path) -> dict[str, bytes]:
    return {p: (out / p).read_bytes() for p in TREE}


def remote_before() -> dict[str, bytes]:
    """A repo holding an earlier build (other sharding, a dropped source) and a file a maintainer added."""
    return {p: b"old " + p.encode() for p in REMOTE}


def test_publish_replaces_the_previous_build_in_one_commit_then_tags(out: Path, hf_env):  # noqa: F811
    hub = FakeHub(REPO, remote_before())
    head = hub.branches["main"]
    res = pub.publish(out, pub.PublishOptions(REPO, tag="v1.0"), api=hub)
    after = hub.files("main")
    # exactly the new build, plus what arcforge does not own; the old build's shards are gone
    assert after == {**local_files(out), ".gitattributes": b"old .gitattributes"}
    assert len(hub.commits) == 2 and res.parent_commit == head  # one commit, on top of the head it read
    assert hub.tags == {"v1.0": res.commit_oid} and hub.branches["main"] == res.commit_oid
    assert hub.messages == [
        (
            f"arcforge {__version__}: 4 shards from 1 source",
            f"Built by arcforge {__version__} from:\n- arc_agi_1: "
            "fchollet/ARC-AGI@399030444e0ab0cc8b4e199870fb20b863846f34 (Apache-2.0)",
        )
    ]
    assert res.commit_url.endswith(f"/commit/{res.commit_oid}")
    d = res.to_dict()
    assert (d["additions"], d["deletions"], d["deletions_known"]) == (len(TREE), 2, True)
    assert [o["path"] for o in d["operations"]] == TREE + STALE
    # publishing the same build again changes nothing on the Hub but makes a new (identical) snapshot
    again = pub.publish(out, pub.PublishOptions(REPO), api=hub)
    assert hub.files(again.commit_oid) == after and again.to_dict()["deletions"] == 0


def test_publish_to_a_branch_leaves_main_alone(out: Path, hf_env):  # noqa: F811
    hub = FakeHub(REPO, remote_before(), private=True)
    main_before = hub.files("main")
    pub.publish(
        out, pub.PublishOptions(REPO, revision="v2-candidate", private=True, message="rebuild"), api=hub
    )
    assert hub.files("main") == main_before
    assert hub.files("v2-candidate") == {**local_files(out), ".gitattributes": b"old .gitattributes"}


def test_publish_as_pull_request_changes_no_branch(out: Path, hf_env):  # noqa: F811
    hub = FakeHub(REPO, remote_before())
    branches = dict(hub.branches)
    res = pub.publish(out, pub.PublishOptions(REPO, create_pr=True), api=hub)
    assert hub.branches == branches and hub.prs == [res.commit_oid]
    assert hub.files(res.commit_oid) == {**local_files(out), ".gitattributes": b"old .gitattributes"}
    assert res.pr_url.endswith("/discussions/1")


def test_first_publish_creates_the_repo_and_deletes_nothing(out: Path, hf_env):  # noqa: F811
    hub = FakeHub(REPO)  # no repo yet
    res = pub.publish(out, pub.PublishOptions(REPO), api=hub)
    assert hub.files("main") == local_files(out)
    assert res.to_dict()["deletions"] == 0


def test_a_concurrent_commit_is_never_overwritten(out: Path, hf_env):  # noqa: F811
    hub = FakeHub(REPO, remote_before())

    def someone_else(h):
        h.before_commit = None
        h.branches["main"] = h._snapshot({**h.files("main"), "theirs.txt": b"mine"})

    hub.before_commit = someone_else
    with pytest.raises(PublishError, match="someone committed to the repo since it was read") as e:
        pub.publish(out, pub.PublishOptions(REPO), api=hub)
    assert "re-run" in e.value.hint
    assert hub.files("main") == {
        **remote_before(),
        "theirs.txt": b"mine",
    }  # their commit stands, ours not made


# --- refusals before any remote call ------------------------------------------------------------------------
def test_not_logged_in_stops_before_any_call(out: Path, api, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(PublishError, match="not logged in") as e:
        pub.publish(out, pub.PublishOptions(REPO), api=api)
    assert "HF_TOKEN" in e.value.hint and "hf auth login" in e.value.hint
    assert calls(api) == []


def test_unknown_license_is_refused_before_any_call(tmp_path, api):
    out = build_out(tmp_path / "o2")  # includes arc_community (license unknown)
    with pytest.raises(PublishError, match="unknown license: arc_community"):
        pub.publish(out, pub.PublishOptions(REPO), api=api)
    assert calls(api) == []
    pub.publish(out, pub.PublishOptions(REPO, allow_unknown_license=True), api=api)
    assert api.create_commit.call_count == 1


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (pub.PublishOptions("not-a-repo-id"), "not of the form ORG/NAME"),
        (pub.PublishOptions(REPO, tag="v1", create_pr=True), "--tag cannot be combined with --create-pr"),
    ],
)
def test_bad_options_stop_before_any_call(out: Path, api, opts, message):
    with pytest.raises(PublishError, match=message):
        pub.publish(out, opts, api=api)
    assert calls(api) == []


def test_private_requested_but_repo_is_public_is_refused_before_committing(out: Path, api):
    with pytest.raises(PublishError, match="already exists and is public"):
        pub.publish(out, pub.PublishOptions(REPO, private=True), api=api)
    assert api.create_commit.call_count == 0


# --- Hub errors mapped to what to do ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "error", "message", "hint"),
    [
        (
            "create_commit",
            hub_error(412, **{"X-Error-Message": "A commit has happened since."}),
            "someone committed to the repo since it was read",
            "re-run `arcforge publish`",
        ),
        ("create_commit", hub_error(409), "someone committed", "re-run"),
        (
            "create_repo",
            hub_error(403, path="/api/repos/create", **{"X-Error-Message": "no rights"}),
            "no write access",
            "--create-pr",
        ),
        (
            "repo_info",
            hub_error(404, "GET", f"/api/datasets/{REPO}/revision/main", **{"X-Error-Code": "RepoNotFound"}),
            "dataset repo not found",
            "--repo-id",
        ),
        (
            "repo_info",
            hub_error(
                404, "GET", f"/api/datasets/{REPO}/revision/main", **{"X-Error-Code": "RevisionNotFound"}
            ),
            "branch 'main' not found",
            "--revision",
        ),
        (
            "create_repo",
            hub_error(
                401,
                path="/api/repos/create",
                **{"X-Error-Message": "Invalid credentials in Authorization header"},
            ),
            "the Hub rejected your token",
            "hf auth login",
        ),
        (
            "create_tag",
            hub_error(409, path=f"/api/datasets/{REPO}/tag/main"),
            "tag 'v1' already exists",
            "new --tag",
        ),
        ("create_commit", hub_error(500), "answered HTTP 500 to create_commit", "retry"),
        ("list_repo_files", httpx2.ConnectError("connection refused"), "cannot reach the Hub", "network"),
    ],
)
def test_hub_errors_become_publish_errors_with_a_hint(out: Path, api, method, error, message, hint):
    getattr(api, method).side_effect = error
    with pytest.raises(PublishError, match=message) as e:
        pub.publish(out, pub.PublishOptions(REPO, tag="v1"), api=api)
    assert hint in e.value.hint
    assert SECRET_TOKEN not in e.value.message


def test_the_token_goes_only_to_hfapi(out: Path, api, monkeypatch):
    made = []
    monkeypatch.setattr(pub, "HfApi", lambda **kw: made.append(kw) or api)
    pub.publish(out, pub.PublishOptions(REPO))
    assert made == [{"token": SECRET_TOKEN}]
    for c in api.method_calls:
        assert SECRET_TOKEN not in repr(c)


# --- the command --------------------------------------------------------------------------------------------
def _no_hub(monkeypatch):
    """Make any Hub access fail loudly: dry-run and --to-dir must not even read the token."""

    def boom(*a, **k):
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr(pub, "HfApi", boom)
    monkeypatch.setattr(pub, "get_token", boom)


def test_cli_dry_run_prints_every_operation_and_contacts_nothing(out: Path, hf_env, monkeypatch):  # noqa: F811
    _no_hub(monkeypatch)
    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO, "--dry-run"])
    assert res.exit_code == 0, res.output
    from arcforge.hub.plan import collect_files

    for f in collect_files(out).files:
        assert f"add    {f.size:>12}  {f.sha256}  {f.path_in_repo}" in res.output
    assert "deletions: not computed (the Hub was not contacted)" in res.output

    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO, "--dry-run", "--json"])
    report = json.loads(res.stdout)
    assert [o["path"] for o in report["operations"]] == TREE
    assert report["mode"] == "dry-run" and report["commit_url"] is None and report["deletions_known"] is False
    assert SECRET_TOKEN not in res.output


def test_cli_to_dir_writes_the_tree_without_the_hub(out: Path, tmp_path: Path, hf_env, monkeypatch):  # noqa: F811
    _no_hub(monkeypatch)
    dest = tmp_path / "tree"
    res = CliRunner().invoke(
        app, ["publish", "-d", str(out), "--repo-id", REPO, "--to-dir", str(dest), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == TREE
    assert json.loads(res.stdout)["to_dir"] == str(dest)
    for p in dest.rglob("*"):
        if p.is_file():
            assert SECRET_TOKEN.encode() not in p.read_bytes()
    res = CliRunner().invoke(
        app, ["publish", "-d", str(out), "--repo-id", REPO, "--to-dir", str(dest), "--dry-run"]
    )
    assert res.exit_code == 1 and "either --dry-run or --to-dir" in res.output


def test_cli_publish_reports_commit_and_tag_and_never_the_token(out: Path, api, monkeypatch):
    monkeypatch.setattr(pub, "HfApi", lambda **kw: api)
    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO, "--tag", "v1.0", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["commit_url"] == f"https://huggingface.co/datasets/{REPO}/commit/{NEW}"
    assert (report["tag"], report["parent_commit"], report["deletions"]) == ("v1.0", HEAD, 2)
    assert api.create_tag.call_count == 1
    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO])
    assert f"committed to {REPO}@main: https://huggingface.co/datasets/{REPO}/commit/{NEW}" in res.output
    assert SECRET_TOKEN not in res.output


def test_cli_errors_exit_1_with_a_hint(out: Path, api, monkeypatch):
    monkeypatch.setattr(pub, "HfApi", lambda **kw: api)
    api.create_commit.side_effect = hub_error(412)
    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO])
    assert res.exit_code == 1
    assert "Error:" in res.output and "hint: re-run `arcforge publish`" in res.output
    assert SECRET_TOKEN not in res.output
    monkeypatch.delenv("HF_TOKEN")
    res = CliRunner().invoke(app, ["publish", "-d", str(out), "--repo-id", REPO])
    assert res.exit_code == 1 and "not logged in" in res.output
