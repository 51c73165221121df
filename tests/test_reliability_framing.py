"""HTTP framing faults from a mirror server (a loopback socket stands in for it): deadlines count time,
not lines or reads, and text from the network is data, never terminal control.

- a status line, a header line or a chunk-size line sent one byte at a time: the fetch fails within its
  deadlines (a socket timeout restarts with every byte and would never fire);
- a reason phrase carrying ESC, BEL, CR and C1 bytes: shown escaped, never as is;
- a token echoed by a server percent-encoded, base64-encoded or without its ``hf_`` prefix: redacted.
"""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.errors import FetchError, printable, redact, register_secret
from arcforge.sources import fetch
from arcforge.sources.download import RetryPolicy
from arcforge.sources.manifest import load_manifests
from tests.fetch_server import RawServer
from tests.test_reliability_network import SLACK, no_proxy  # noqa: F401  (fixture)

runner = CliRunner()
HOSTILE_REASON = b"Bad\x1b]0;pwned\x07\x1b[2J\r\x9b31m\x08"


def _fetch(url: str, policy: RetryPolicy) -> tuple[fetch.FetchResult, float]:
    t0 = time.monotonic()
    [r] = fetch.fetch_sources([load_manifests()["arc_community"]], mirror=url, retry=policy)
    return r, time.monotonic() - t0


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 200 " + b"O" * 60_000 + b"K\r\nContent-Length: 10\r\n\r\n",  # the status line drips
        b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 60_000 + b"\r\n\r\n",  # one long header line drips
    ],
    ids=["status-line", "header-line"],
)
def test_a_dripping_status_or_header_line_fails_within_the_header_timeout(arcforge_home, no_proxy, payload):  # noqa: F811
    policy = RetryPolicy(attempts=2, base_delay=0.01, timeout=1.0, deadline=30)
    with RawServer(payload, step=1, pause=0.02) as srv:
        r, took = _fetch(srv.url, policy)
    assert r.status == "failed" and "no complete status line and headers within 1 s" in r.error, r.error
    assert took < 2 * policy.timeout + SLACK  # at this pace the headers alone take 20 minutes


def test_a_dripping_chunk_size_line_ends_at_the_overall_deadline(arcforge_home, no_proxy):  # noqa: F811
    payload = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 60_000 + b"a\r\n"
    policy = RetryPolicy(attempts=1, base_delay=0.01, timeout=1.0, deadline=2.0, min_rate=0)
    with RawServer(payload, step=1, pause=0.01) as srv:
        r, took = _fetch(srv.url, policy)
    assert r.status == "failed" and "2 s deadline" in r.error, r.error
    assert took < policy.deadline + SLACK


def test_a_hostile_reason_phrase_is_shown_escaped(arcforge_home, no_proxy, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ARCFORGE_RETRIES", "1")
    payload = b"HTTP/1.1 503 " + HOSTILE_REASON + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with RawServer(payload) as srv:
        res = runner.invoke(app, ["fetch", "arc_community", "--mirror", srv.url])
    assert res.exit_code == 1 and "HTTP 503 Bad\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x9b31m\\x08" in res.output
    assert not any(c in res.output for c in "\x1b\x07\r\x9b\x08"), repr(res.output)


def test_every_typed_error_is_printable_and_redacted():
    token = "hf_arcforgeFRAMINGtoken0123456789xyz"
    register_secret(token)
    body = token.removeprefix("hf_")
    echoes = [
        token,
        "".join(f"%{ord(c):02X}" for c in token),
        "".join(f"%{ord(c):02x}" for c in token),
        token.replace("_", "%5F"),
        body,
        "".join(f"%{ord(c):02x}" for c in body),
        token.upper().lower(),
    ]
    import base64

    echoes.append(base64.b64encode(token.encode()).decode())
    for echo in echoes:
        e = FetchError(f"the server said: token={echo}\x1b[31m!", hint=f"echo {echo}")
        assert body not in e.message and echo not in e.message and echo not in (e.hint or ""), (
            echo,
            e.message,
        )
        assert "\x1b" not in e.message and "\\x1b[31m!" in e.message
    assert redact("plain text, no token") == "plain text, no token"
    assert printable("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert printable("bidi \u202e override") == "bidi \\u202e override"
