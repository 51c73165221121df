"""Every network call has a deadline: fake slow servers on 127.0.0.1 stand in for GitHub and the Hub.

- a server that drips one byte at a time: fetch fails at its overall deadline (or on the minimum rate);
- a server that stalls mid-body: fetch fails after the per-read timeout, with a message that says so;
- a Hub endpoint that accepts the connection and never answers: publish fails after ARCFORGE_HUB_TIMEOUT;
- a Hub error that echoes the Authorization header: the token never reaches the output.
"""

from __future__ import annotations

import gzip
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.sources import fetch
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests
from tests.publish_helpers import SECRET_TOKEN, build_out, hf_env  # noqa: F401  (fixture)

runner = CliRunner()
SLACK = 10.0  # seconds of scheduling noise allowed on a loaded CI machine (the faults hung for 600+ s)
BODY = gzip.compress(random.Random(0).randbytes(1 << 20), mtime=0)  # a valid gzip stream that never ends soon


class SlowServer:
    """``drip``: 200 with a large Content-Length, then one byte every ``pause`` s; ``stall``: half a body,
    then nothing; ``silent``: accepts the connection, reads the request, never answers; ``echo401``: a
    401 whose body repeats the request's Authorization header (as a misbehaving proxy might)."""

    def __init__(self, mode: str, pause: float = 0.05) -> None:
        self.mode, self.pause = mode, pause
        self.stop = threading.Event()
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                if srv.mode == "silent":
                    srv.stop.wait(30)
                    return
                if srv.mode == "echo401":
                    body = f"bad credentials: {self.headers.get('Authorization')}".encode()
                    self.send_response(401)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                try:
                    if srv.mode == "stall":
                        self.wfile.write(BODY[:1000])
                        self.wfile.flush()
                        srv.stop.wait(30)
                    else:
                        for i in range(len(BODY)):
                            if srv.stop.is_set():
                                break
                            self.wfile.write(BODY[i : i + 1])
                            self.wfile.flush()
                            time.sleep(srv.pause)
                except OSError:
                    pass

            do_GET = do_POST = do_HEAD = do_PUT = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SlowServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _fetch(url: str, policy: RetryPolicy) -> tuple[fetch.FetchResult, float]:
    m = load_manifests()["arc_community"]
    t0 = time.monotonic()
    [r] = fetch.fetch_sources([m], mirror=url, retry=policy)
    return r, time.monotonic() - t0


def test_a_dripping_server_fails_at_the_overall_deadline(arcforge_home, no_proxy):
    policy = RetryPolicy(attempts=5, base_delay=0.01, timeout=1.0, deadline=1.5, min_rate=0, rate_window=60)
    with SlowServer("drip") as srv:
        r, took = _fetch(srv.url, policy)
    assert (
        r.status == "failed"
        and "within the 1.5 s deadline" in r.error
        and "ARCFORGE_FETCH_DEADLINE" in r.hint
    )
    assert 1.4 < took < 1.5 + policy.timeout + SLACK  # the body would take 14 hours at this pace
    assert fetch.cache_dir(load_manifests()["arc_community"]).exists() is False


def test_a_dripping_server_fails_on_the_minimum_rate_and_retries_within_the_deadline(arcforge_home, no_proxy):
    policy = RetryPolicy(
        attempts=2, base_delay=0.01, timeout=1.0, deadline=20, min_rate=1000, rate_window=0.4
    )
    with SlowServer("drip") as srv:
        r, took = _fetch(srv.url, policy)
    assert r.status == "failed" and "bytes/s are needed" in r.error and "after 2 attempts" in r.error
    assert took < 2 * policy.rate_window + SLACK


def test_a_server_that_stalls_mid_body_fails_after_the_read_timeout(arcforge_home, no_proxy):
    policy = RetryPolicy(attempts=2, base_delay=0.01, timeout=0.5, deadline=20)
    with SlowServer("stall") as srv:
        r, took = _fetch(srv.url, policy)
    assert r.status == "failed" and "no data from" in r.error and "for 0.5 s" in r.error
    assert took < 2 * policy.timeout + SLACK


def test_cli_fetch_honours_the_deadline_from_the_environment(arcforge_home, no_proxy, monkeypatch):
    monkeypatch.setenv("ARCFORGE_FETCH_DEADLINE", "1")
    monkeypatch.setenv("ARCFORGE_FETCH_TIMEOUT", "0.5")
    with SlowServer("drip") as srv:
        t0 = time.monotonic()
        res = runner.invoke(app, ["fetch", "arc_community", "--mirror", srv.url])
    assert res.exit_code == 1 and time.monotonic() - t0 < 1 + 0.5 + SLACK
    assert "within the 1 s deadline" in res.output and "Traceback" not in res.output
    monkeypatch.setenv("ARCFORGE_FETCH_DEADLINE", "nan")
    res = runner.invoke(app, ["fetch", "arc_community", "--mirror", "http://127.0.0.1:9"])
    assert res.exit_code == 1 and "must be positive" in res.output


@pytest.fixture()
def out(tmp_path: Path) -> Path:
    return build_out(tmp_path / "out", sources=("arc_agi_1",))


def _online(monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)


def test_publish_to_a_hub_that_never_answers_fails_at_the_timeout(out, hf_env, monkeypatch, no_proxy):  # noqa: F811
    from huggingface_hub import HfApi

    from arcforge.errors import PublishError
    from arcforge.hub import publish as pub

    _online(monkeypatch)
    monkeypatch.setenv("ARCFORGE_HUB_TIMEOUT", "1")
    with SlowServer("silent") as srv:
        t0 = time.monotonic()
        with pytest.raises(PublishError, match=r"did not answer within 1 s \(create_repo") as e:
            pub.publish(out, pub.PublishOptions("arc-org/arc-corpus"), api=HfApi(endpoint=srv.url))
        assert time.monotonic() - t0 < 1 + SLACK
    assert "ARCFORGE_HUB_TIMEOUT" in e.value.hint
    monkeypatch.setenv("ARCFORGE_HUB_TIMEOUT", "0")
    with pytest.raises(PublishError, match="not a positive number"):
        pub.install_timeouts()


def test_cli_publish_never_prints_the_token_even_when_the_hub_echoes_it(out, hf_env, monkeypatch, no_proxy):  # noqa: F811
    from huggingface_hub import HfApi

    from arcforge.hub import publish as pub

    _online(monkeypatch)
    monkeypatch.setenv("ARCFORGE_HUB_TIMEOUT", "5")
    with SlowServer("echo401") as srv:
        monkeypatch.setattr(pub, "HfApi", lambda **kw: HfApi(endpoint=srv.url, **kw))
        res = runner.invoke(app, ["publish", "-d", str(out), "--repo-id", "arc-org/arc-corpus"])
    assert res.exit_code == 1 and "(bad credentials: Bearer ***)" in res.output  # the echo, redacted
    assert SECRET_TOKEN not in res.output and SECRET_TOKEN[3:] not in res.output
    assert "Traceback" not in res.output


def test_a_dropped_socket_is_not_a_hang(arcforge_home, no_proxy):
    """A listener that accepts and closes at once: a clear failure, quickly."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    stop = threading.Event()

    def serve():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r, took = _fetch(
            f"http://127.0.0.1:{sock.getsockname()[1]}",
            RetryPolicy(attempts=2, base_delay=0.01, timeout=1, deadline=10),
        )
    finally:
        stop.set()
        t.join()
        sock.close()
    assert r.status == "failed" and took < 2 + SLACK and "after 2 attempt" in r.error
