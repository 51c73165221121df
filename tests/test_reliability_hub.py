"""A Hub that answers oddly (a loopback server as HF_ENDPOINT, tests/odd_hub.py): publish and
`train -d ORG/NAME` end within their deadlines, with one clear line, and never print the token.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from tests.odd_hub import REPO, REPO_INFO, OddHub, ok_rules
from tests.publish_helpers import SECRET_TOKEN, build_out, hf_env  # noqa: F401  (fixture)
from tests.test_reliability_network import SLACK, no_proxy  # noqa: F401  (fixture)

runner = CliRunner()
TIMEOUT = 1.0  # ARCFORGE_HUB_TIMEOUT in these tests; a call's total deadline is 4 times that


@pytest.fixture()
def online(hf_env, no_proxy, monkeypatch):  # noqa: F811
    """hf_env, online, with huggingface_hub's agent-harness cache inside it and not yet loaded."""
    import huggingface_hub.constants as hc
    from huggingface_hub.utils import _detect_agent

    from arcforge import errors

    monkeypatch.setattr(errors, "_secrets", set())  # no token known from an earlier test
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "AGENT_HARNESSES_PATH", str(hf_env / ".agent_harnesses.json"))
    monkeypatch.setattr(_detect_agent, "_registry", None)
    monkeypatch.setenv("ARCFORGE_HUB_TIMEOUT", str(TIMEOUT))
    return hf_env


def _with(rules: list, stage_prefix: str, how) -> list:
    """``ok_rules`` with the rule whose path starts with ``stage_prefix`` answering ``how``."""
    return [(m, p, how if p.startswith(stage_prefix) else b) for m, p, b in rules]


def publish(hub: OddHub, monkeypatch, out: Path, *extra: str):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "ENDPOINT", hub.url)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    t0 = time.monotonic()
    r = runner.invoke(app, ["publish", "-d", str(out), "--repo-id", REPO, *extra])
    return r, time.monotonic() - t0


def one_line(r) -> None:
    assert r.exit_code == 1, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output, r.output
    assert SECRET_TOKEN not in r.output and SECRET_TOKEN[3:] not in r.output, r.output


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return build_out(tmp_path / "out", sources=("arc_agi_1",))


INFO = f"/api/datasets/{REPO}/revision/"
TREE = f"/api/datasets/{REPO}/tree/"


@pytest.mark.parametrize(
    "prefix,how,stage",
    [
        (
            "/api/repos/create",
            ("json", 409, {"error": "You already created this dataset repo"}),
            "create_repo",
        ),
        (INFO, ("json", 200, [REPO_INFO]), "repo_info"),
        (INFO, ("json", 200, {"sha": REPO_INFO["sha"]}), "repo_info"),
        (INFO, ("json", 200, {"id": REPO}), "repo_info"),
        (INFO, ("raw", 200, b"\x00<html>garbage{"), "repo_info"),
        (TREE, ("json", 200, {"path": "x"}), "list_repo_files"),
        (TREE, ("json", 200, [{"oops": 1}]), "list_repo_files"),
        (TREE, ("raw", 200, b"]["), "list_repo_files"),
    ],
    ids=[
        "409-no-url",
        "info-list",
        "info-no-id",
        "info-no-sha",
        "info-garbage",
        "tree-object",
        "tree-items",
        "tree-garbage",
    ],
)
def test_an_answer_of_the_wrong_shape_is_one_clear_line(online, out, monkeypatch, prefix, how, stage):
    with OddHub(_with(ok_rules(), prefix, how)) as hub:
        r, _ = publish(hub, monkeypatch, out)
    one_line(r)
    assert f"the Hub's answer to {stage} is not what it should be" in r.output, r.output
    assert not any("/commit/" in x or "preupload" in x for x in hub.requests)  # nothing was sent


@pytest.mark.parametrize(
    "prefix,how",
    [(INFO, "silent"), (INFO, "close"), (TREE, "close"), (TREE, "silent")],
    ids=["info-silent", "info-closes", "tree-closes", "tree-silent"],
)
def test_a_hub_that_never_answers_or_hangs_up_ends_within_the_deadline(online, out, monkeypatch, prefix, how):
    with OddHub(_with(ok_rules(), prefix, how)) as hub:
        r, took = publish(hub, monkeypatch, out)
    one_line(r)
    assert took < 4 * TIMEOUT + SLACK, (took, r.output)  # was: 150-400 s with a 3 s timeout
    assert "ARCFORGE_HUB_TIMEOUT" in r.output or "cannot reach the Hub" in r.output, r.output


@pytest.mark.parametrize(
    "how",
    ["silent", ("json", 200, [REPO_INFO]), ("raw", 200, b"<html>")],
    ids=["silent", "info-list", "garbage"],
)
def test_train_from_an_odd_hub_is_one_line_within_the_deadline(online, tmp_path, monkeypatch, how):
    pytest.importorskip("torch")
    import huggingface_hub.constants as hc

    with OddHub([*_with(ok_rules(), INFO, how), ("GET", f"/api/datasets/{REPO}", how)]) as hub:
        monkeypatch.setattr(hc, "ENDPOINT", hub.url)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        t0 = time.monotonic()
        r = runner.invoke(app, ["train", "-d", REPO, "--out", str(tmp_path / "run"), "--max-steps", "1"])
        took = time.monotonic() - t0
    one_line(r)
    assert took < 4 * TIMEOUT + 10 + SLACK, (took, r.output)  # + HF_HUB_ETAG_TIMEOUT's first try
    assert REPO in r.output


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.removeprefix("hf_"),
        lambda t: "".join(f"%{ord(c):02X}" for c in t),
        lambda t: t.replace("_", "%5f"),
        lambda t: base64.b64encode(t.encode()).decode(),
    ],
    ids=["no-prefix", "percent-encoded", "underscore-encoded", "base64"],
)
@pytest.mark.parametrize("login", ["env", "stored"])
def test_the_token_is_never_printed_whatever_the_encoding(online, out, monkeypatch, encode, login):
    if login == "stored":  # `hf auth login`: no $HF_TOKEN to recognise it by
        monkeypatch.delenv("HF_TOKEN")
        online.mkdir(parents=True, exist_ok=True)
        (online / "token").write_text(SECRET_TOKEN)
    body = f"bad credentials: {encode(SECRET_TOKEN)} (token={encode(SECRET_TOKEN)})".encode()
    with OddHub(_with(ok_rules(), "/api/repos/create", ("raw", 401, body))) as hub:
        r, _ = publish(hub, monkeypatch, out)
    one_line(r)
    assert "the Hub rejected your token" in r.output
    assert encode(SECRET_TOKEN) not in r.output and "(bad credentials: ***" in r.output, r.output


@pytest.mark.parametrize("cached", [True, False], ids=["cached-before", "served-now"])
def test_a_damaged_agent_harness_cache_is_named_with_how_to_clear_it(online, out, monkeypatch, cached):
    path = online / ".agent_harnesses.json"
    rules = ok_rules()
    if cached:
        online.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"standardEnvVars": [], "harnesses": ["claude"]}))
    else:
        rules = _with(rules, "/api/agent-harnesses", ("json", 200, [1, 2]))
    with OddHub(rules) as hub:
        r, _ = publish(hub, monkeypatch, out)
    one_line(r)
    assert f"{path}: huggingface_hub's cached agent-harness registry is damaged" in r.output
    assert f"rm {path}" in r.output


@pytest.mark.parametrize("dry_run", [True, False])
def test_publish_refuses_a_damaged_shard(online, out, monkeypatch, dry_run):
    shard = sorted(out.glob("arc_agi_1/*.parquet"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))  # zeroed tail
    with OddHub(ok_rules()) as hub:
        r, _ = publish(hub, monkeypatch, out, *(["--dry-run"] if dry_run else []))
    one_line(r)
    assert str(shard) in r.output and "nothing was published" in r.output, r.output
    assert hub.requests == []  # refused before any call


def test_urls_from_the_hub_are_printed_escaped(hf_env, out, monkeypatch):  # noqa: F811
    from types import SimpleNamespace

    from arcforge.hub import publish as pub
    from tests.publish_helpers import FakeHub

    class HostileHub(FakeHub):
        def create_commit(self, *args, **kwargs):
            info = super().create_commit(*args, **kwargs)
            return SimpleNamespace(
                oid=info.oid, commit_url="https://hub/c\x1b]0;owned\x07\x1b[2J", pr_url=None
            )

    hub = HostileHub(REPO, {})
    monkeypatch.setattr(pub, "HfApi", lambda **kw: hub)
    r = runner.invoke(app, ["publish", "-d", str(out), "--repo-id", REPO])
    assert r.exit_code == 0, r.output
    assert "https://hub/c\\x1b]0;owned\\x07\\x1b[2J" in r.output and "\x1b" not in r.output
