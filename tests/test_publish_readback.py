"""Reading a published dataset back: ``resolve_data`` for local folders, ``ORG/NAME`` and
``hf://datasets/ORG/NAME[@rev]``.

The Hub is the network boundary, so it is replaced by a tiny Hub-compatible HTTP server on 127.0.0.1
(``FakeHub``) that serves an ``arcforge publish --to-dir`` export with the Hub's API shapes: repo info,
the recursive tree listing and ``resolve`` downloads with ``X-Repo-Commit``/``ETag`` headers. Everything
else is the real huggingface_hub ``snapshot_download`` writing the real HF cache; a second resolve then
runs with ``HF_HUB_OFFLINE=1`` and the server stopped, from the cache alone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from arcforge.errors import FetchError, ShardError, SourceUnavailableError
from arcforge.hub.data import DataSpec, parse_data_spec, resolve_data
from arcforge.hub.plan import collect_files, write_tree
from arcforge.shards import read_table
from tests.publish_helpers import build_out, hf_env  # noqa: F401  (fixture)

REPO = "arc-org/arc-corpus"
SHA = "c0ffee" + "0" * 34


class FakeHub:
    """Serves one dataset repo (a folder) at one commit, under the refs ``main`` and ``v1``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = {
            p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                self._serve(body=False)

            def do_GET(self):
                self._serve(body=True)

            def _send(self, status, data=b"", headers=None, body=True):
                self.send_response(status)
                for k, v in {"Content-Length": str(len(data)), **(headers or {})}.items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _serve(self, body):
                url = urlparse(self.path)
                path = unquote(url.path)
                hub.requests.append(f"{self.command} {path}")
                api, files = f"/api/datasets/{REPO}/", f"/datasets/{REPO}/resolve/"
                if not path.startswith((api, files)):
                    return self._send(404, b"{}", {"X-Error-Code": "RepoNotFound"}, body)
                if path.startswith(api + "revision/"):
                    if path.removeprefix(api + "revision/") not in ("main", "v1", SHA):
                        return self._send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, body)
                    info = {
                        "id": REPO,
                        "sha": SHA,
                        "private": False,
                        "siblings": [{"rfilename": p} for p in hub.files],
                    }
                    return self._send(
                        200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body
                    )
                if path == api + f"tree/{SHA}":
                    tree = [
                        {"type": "file", "path": p, "size": len(d), "oid": hub.oid(d)}
                        for p, d in hub.files.items()
                    ]
                    return self._send(
                        200, json.dumps(tree).encode(), {"Content-Type": "application/json"}, body
                    )
                rel = path.removeprefix(files + SHA + "/")
                if path.startswith(files + SHA + "/") and rel in hub.files:
                    data = hub.files[rel]
                    return self._send(200, data, {"X-Repo-Commit": SHA, "ETag": f'"{hub.oid(data)}"'}, body)
                return self._send(404, b"{}", {"X-Error-Code": "EntryNotFound"}, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def oid(data: bytes) -> str:  # git blob id, as the Hub reports it
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def exported(tmp_path: Path) -> tuple[Path, Path]:
    """(built folder, the exact repo tree that publish would push)."""
    out = build_out(tmp_path / "out", sources=("arc_agi_1",))
    return out, write_tree(collect_files(out), tmp_path / "repo")


def test_parse_data_spec(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_data_spec("org/name") == DataSpec(repo_id="org/name")
    assert parse_data_spec("org/name@v1.0") == DataSpec(repo_id="org/name", revision="v1.0")
    assert parse_data_spec("hf://datasets/org/name") == DataSpec(repo_id="org/name")
    assert parse_data_spec("hf://datasets/org/name@main/") == DataSpec(repo_id="org/name", revision="main")
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert parse_data_spec("org/name") == DataSpec(path=Path("org/name"))  # an existing folder wins
    assert parse_data_spec("./other/x") == DataSpec(path=Path("other/x"))
    assert parse_data_spec(tmp_path) == DataSpec(path=tmp_path)
    with pytest.raises(FetchError, match="not a Hub dataset URI"):
        parse_data_spec("hf://models/org/name")


def test_resolve_local_folder_as_is(exported, tmp_path: Path):
    out, _ = exported
    assert resolve_data(str(out)) == out
    with pytest.raises(ShardError, match="dataset folder not found"):
        resolve_data(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no arcforge shards"):
        resolve_data(tmp_path / "empty")


def test_resolve_hub_dataset_downloads_into_the_hf_cache_then_works_offline(exported, hf_env, monkeypatch):  # noqa: F811
    import huggingface_hub.constants as hc

    out, repo = exported
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # online, but only to the loopback fake Hub
    with FakeHub(repo) as hub:
        got = resolve_data(REPO, endpoint=hub.url)
        assert f"GET /api/datasets/{REPO}/revision/main" in hub.requests
        assert f"GET /api/datasets/{REPO}/tree/{SHA}" in hub.requests
        downloads = sorted(
            r.split(f"/resolve/{SHA}/")[1] for r in hub.requests if r.startswith("GET ") and "/resolve/" in r
        )
        assert downloads == sorted(hub.files)
        assert resolve_data(f"hf://datasets/{REPO}@v1", endpoint=hub.url) == got
        with pytest.raises(FetchError, match="revision not found"):
            resolve_data(f"{REPO}@nope", endpoint=hub.url)
        with pytest.raises(FetchError, match="dataset repo not found"):
            resolve_data("arc-org/other", endpoint=hub.url)

    cache = hf_env / "hub" / "datasets--arc-org--arc-corpus"
    assert got == cache / "snapshots" / SHA
    assert (cache / "refs" / "main").read_text() == SHA
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == sorted(hub.files)
    for rel, data in hub.files.items():
        assert (got / rel).read_bytes() == data
    assert read_table(got).equals(read_table(out))  # the trainer reads the same rows

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)  # server gone, offline: the cache alone serves it
    assert resolve_data(f"hf://datasets/{REPO}", endpoint=hub.url) == got
    with pytest.raises(SourceUnavailableError, match="not in the local Hugging Face cache"):
        resolve_data("arc-org/never-downloaded", endpoint=hub.url)
