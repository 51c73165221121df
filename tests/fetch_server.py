"""Test helpers for fetch: GitHub-style tarballs built from a folder, and a loopback HTTP server.

The server stands in for codeload.github.com (the network boundary): it serves registered paths, counts
requests, and can misbehave on purpose per request (drop the connection mid-body, answer 503/429).
"""

from __future__ import annotations

import gzip
import socket
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BLOCK = 512


# --- tarballs ---------------------------------------------------------------------------------------------
def _entry(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    raw = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    pad = (-len(data)) % BLOCK
    return raw + data + b"\0" * pad


def file_info(name: str, size: int, kind: bytes = tarfile.REGTYPE, **attrs) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644, 1_700_000_000
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


def github_tarball(
    src: Path,
    repo: str,
    commit: str,
    *,
    replace: dict[str, bytes] | None = None,
    extra: dict[str, bytes] | None = None,
    raw_entries: list[tuple[tarfile.TarInfo, bytes]] | None = None,
) -> bytes:
    """A .tar.gz shaped like GitHub's: pax global header with the commit, everything under
    ``<repo>-<commit>/``. ``src`` files (all of them) + ``extra`` files; ``replace`` swaps contents;
    ``raw_entries`` are appended verbatim (headers may lie about sizes, names may be hostile)."""
    top = f"{repo}-{commit}"
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
    files.update(extra or {})
    files.update(replace or {})
    out = [tarfile.TarInfo.create_pax_global_header({"comment": commit})]
    out.append(_entry(file_info(f"{top}/", 0, tarfile.DIRTYPE, mode=0o755)))
    dirs: set[str] = set()
    for rel in sorted(files):
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                out.append(_entry(file_info(f"{top}/{d}/", 0, tarfile.DIRTYPE, mode=0o755)))
        out.append(_entry(file_info(f"{top}/{rel}", len(files[rel])), files[rel]))
    for info, data in raw_entries or []:
        out.append(_entry(info, data))
    out.append(b"\0" * (2 * BLOCK))
    tar = b"".join(out)
    tar += b"\0" * ((-len(tar)) % 10240)  # GitHub pads to whole 20-block records
    return gzip.compress(tar, mtime=0)


# --- the server -------------------------------------------------------------------------------------------
@dataclass
class Route:
    body: bytes
    plan: list[str] = field(default_factory=list)  # one behaviour per request, then "ok" forever


class TarballServer:
    """Threaded loopback HTTP server. Behaviours: ok, ok-chunked, drop-length, drop-chunked,
    drop-close (no length; closes mid-body), and any status code as a string ("503", "429")."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                with owner._lock:
                    owner.requests.append(self.path)
                    route = owner.routes.get(self.path)
                    action = route.plan.pop(0) if route and route.plan else "ok"
                if route is None:
                    return self._status(404)
                if action.isdigit():
                    return self._status(int(action))
                body, half = route.body, route.body[: len(route.body) // 2]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                if action in ("ok", "drop-length"):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body if action == "ok" else half)
                elif action in ("ok-chunked", "drop-chunked"):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    data = body if action == "ok-chunked" else half
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    if action == "ok-chunked":
                        self.wfile.write(b"0\r\n\r\n")
                elif action == "drop-close":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(half)
                else:
                    raise AssertionError(f"unknown behaviour {action}")
                self.wfile.flush()
                if action.startswith("drop"):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                if code == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add_tarball(
        self, owner: str, repo: str, commit: str, body: bytes, plan: list[str] | None = None
    ) -> str:
        path = f"/{owner}/{repo}/tar.gz/{commit}"
        self.routes[path] = Route(body, list(plan or []))
        return path

    def count(self, path: str | None = None) -> int:
        with self._lock:
            return sum(1 for p in self.requests if path is None or p == path)

    def __enter__(self) -> TarballServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class RawServer:
    """A loopback listener that answers every connection with ``payload`` as raw bytes, ``step`` bytes at a
    time with ``pause`` seconds between (HTTP framing faults: a status line or header line that drips, a
    status line carrying terminal control bytes), then holds the connection open until stopped."""

    def __init__(self, payload: bytes, *, step: int = 0, pause: float = 0.0) -> None:
        self.payload, self.step, self.pause = payload, step or len(payload), pause
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            for i in range(0, len(self.payload), self.step):
                if self.stop.is_set():
                    break
                conn.sendall(self.payload[i : i + self.step])
                self.stop.wait(self.pause)
            self.stop.wait(30)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
