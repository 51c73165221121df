"""A loopback Hub (``HF_ENDPOINT``) that answers oddly on purpose: the network boundary of publish and of
``train -d ORG/NAME``. Each request is matched against ``rules`` (method + path prefix, first match wins)
and answered by its behaviour:

- ``("json", status, obj)`` / ``("raw", status, bytes)``: that answer;
- ``"silent"``: read the request, never answer; ``"close"``: close the connection without a word.

Anything unmatched: a 404 ``RepoNotFound``. ``requests`` records what was asked, in order.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

REPO = "arc-org/arc-corpus"
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO_INFO = {"id": REPO, "sha": SHA, "private": False, "siblings": []}


def ok_rules() -> list[tuple[str, str, Any]]:
    """What a healthy Hub answers for publish's calls up to the commit (an empty repo). ``{url}`` in a
    JSON answer is the server's own address."""
    return [
        ("GET", "/api/agent-harnesses", ("json", 200, {"standardEnvVars": [], "harnesses": {}})),
        ("POST", "/api/repos/create", ("json", 200, {"url": "{url}/datasets/" + REPO, "name": REPO})),
        ("GET", f"/api/datasets/{REPO}/revision/", ("json", 200, REPO_INFO)),
        ("GET", f"/api/datasets/{REPO}/tree/", ("json", 200, [])),
    ]


class OddHub:
    def __init__(self, rules: list[tuple[str, str, Any]]) -> None:
        self.rules = rules
        self.requests: list[str] = []
        self.stop = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append(f"{self.command} {path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                how = next(
                    (b for m, prefix, b in hub.rules if m == self.command and path.startswith(prefix)),
                    ("json", 404, {"error": "Repository not found"}),
                )
                if how == "silent":
                    hub.stop.wait(60)
                    return
                if how == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                kind, status, body = how
                data = json.dumps(body).replace("{url}", hub.url).encode() if kind == "json" else body
                self.send_response(status)
                if status == 404:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OddHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
