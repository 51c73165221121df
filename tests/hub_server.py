"""A loopback stand-in for the Hugging Face Hub (the network boundary) serving dataset repos at one commit.

It speaks the part of the Hub's HTTP API that huggingface_hub's ``list_repo_tree`` and ``hf_hub_download``
use: ``GET /api/datasets/<repo>/revision/<ref>`` (``dataset_info``: the commit a branch or tag names, set
with ``set_ref``), ``GET /api/datasets/<repo>/tree/<rev>`` (the recursive file listing), ``HEAD``/``GET
/datasets/<repo>/resolve/<rev>/<path>`` with ``X-Repo-Commit``, ``ETag`` and HTTP range requests.
Behaviours per file, one per GET (then "ok"): ``drop`` sends half the body and closes the connection,
``stall`` sends half and then nothing, a status code (``503``, ``403``) answers with it.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], dict[str, bytes]] = {}  # (repo, commit) -> {path: bytes}
        self.refs: dict[tuple[str, str], str] = {}  # (repo, branch or tag) -> commit
        self.plans: dict[str, list[str]] = {}  # path -> behaviours
        self.requests: list[str] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo: str, commit: str, files: dict[str, bytes]) -> None:
        self.repos[(repo, commit)] = dict(files)

    def set_ref(self, repo: str, ref: str, commit: str) -> None:
        """Point a branch or tag at a commit (moving it, when it was set)."""
        self.refs[(repo, ref)] = commit

    def gets(self, needle: str = "") -> list[str]:
        with self._lock:
            return [r for r in self.requests if r.startswith("GET") and needle in r]

    # --- the handler's work ---------------------------------------------------------------------------------
    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        data: bytes = b"",
        headers: dict | None = None,
        body: bool = True,
    ) -> None:
        h.send_response(status)
        for k, v in {"Content-Length": str(len(data)), **(headers or {})}.items():
            h.send_header(k, v)
        h.end_headers()
        if body and data:
            h.wfile.write(data)

    def _serve(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlparse(h.path).path)
        rng = h.headers.get("Range")
        with self._lock:
            self.requests.append(f"{h.command} {path}" + (f" {rng}" if rng else ""))
        for (repo, ref), commit in self.refs.items():
            if path == f"/api/datasets/{repo}/revision/{ref}":
                info = json.dumps({"id": repo, "sha": commit, "private": False}).encode()
                return self._send(h, 200, info, {"Content-Type": "application/json"}, body)
        for (repo, commit), files in self.repos.items():
            tree, res = f"/api/datasets/{repo}/tree/{commit}", f"/datasets/{repo}/resolve/{commit}/"
            if path.rstrip("/") == tree:
                listing = [
                    {"type": "file", "path": p, "size": len(d), "oid": git_oid(d)} for p, d in files.items()
                ]
                return self._send(
                    h, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body
                )
            if path.startswith(res) and path[len(res) :] in files:
                return self._file(h, path[len(res) :], files[path[len(res) :]], commit, rng, body)
        return self._not_found(h, path, body)

    def _not_found(self, h: BaseHTTPRequestHandler, path: str, body: bool) -> None:
        """404 with the Hub's error code: the repo is unknown, or its revision, or the file at it."""
        for repo, _commit in self.repos:
            if path.startswith((f"/api/datasets/{repo}/", f"/datasets/{repo}/")):
                known = any(c in path for (r, c) in self.repos if r == repo)
                code = "EntryNotFound" if known else "RevisionNotFound"
                return self._send(h, 404, b"{}", {"X-Error-Code": code}, body)
        return self._send(h, 404, b"{}", {"X-Error-Code": "RepoNotFound"}, body)

    def _file(
        self, h: BaseHTTPRequestHandler, rel: str, data: bytes, commit: str, rng: str | None, body: bool
    ) -> None:
        headers = {"X-Repo-Commit": commit, "ETag": f'"{git_oid(data)}"', "Accept-Ranges": "bytes"}
        if not body:
            return self._send(h, 200, data, headers, body=False)
        with self._lock:
            plan = self.plans.get(rel) or []
            action = plan.pop(0) if plan else "ok"
        if action.isdigit():
            return self._send(h, int(action), b"{}", body=True)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        part = data[start:]
        status = 206 if rng else 200
        if rng:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        h.send_response(status)
        for k, v in {"Content-Length": str(len(part)), **headers}.items():
            h.send_header(k, v)
        h.end_headers()
        if action == "ok":
            h.wfile.write(part)
            return
        h.wfile.write(part[: len(part) // 2])
        h.wfile.flush()
        if action == "stall":
            time.sleep(30)
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
