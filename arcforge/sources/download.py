"""HTTP downloads with retries: the one place arcforge talks to GitHub (or an HTTP mirror).

Tarballs are fetched from ``{base}/{owner}/{repo}/tar.gz/{commit}``, GitHub's codeload layout. ``base`` is
``https://codeload.github.com``, or ``$ARCFORGE_GITHUB_URL`` when set (tests point it at a loopback
server), or an HTTP mirror's base URL. Only the standard library is used.

Transient failures are retried with exponential backoff (``RetryPolicy``): HTTP 408/425/429/5xx,
refused/reset/dropped connections, timeouts, stalls and bodies that end early. A name that does not
resolve (no network) is not retried. Each attempt starts the download from the beginning.

Deadlines (every call has one; ``RetryPolicy``, overridable by environment variables):

- ``timeout`` (``$ARCFORGE_FETCH_TIMEOUT``, 30 s): no byte for that long -> the attempt fails ("stalled");
- ``min_rate`` over ``rate_window`` (1 KiB/s averaged over 60 s): a server that drips bytes fails too;
- ``deadline`` (``$ARCFORGE_FETCH_DEADLINE``, 1200 s): one source, all attempts and waits together. It is
  checked before every read and every retry, so a fetch ends at most ``timeout`` seconds after it.

These count time, never lines or reads: a socket timeout restarts with every byte, so a server that sends
its status line, a header line or a chunk-size line one byte at a time would never trip it. ``Watch``
therefore arms timers that shut the connection down: the status line and headers must be complete within
``timeout`` seconds, and nothing of the exchange outlives the deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from arcforge import __version__
from arcforge.errors import FetchError, SourceUnavailableError
from arcforge.sources.archive import TruncatedArchiveError

GITHUB_URL_ENV = "ARCFORGE_GITHUB_URL"
DEFAULT_GITHUB_URL = "https://codeload.github.com"
MIRROR_HINT = (
    "without GitHub access, use a mirror: --mirror PATH_OR_URL or ARCFORGE_MIRROR=... "
    "(a folder laid out <owner>/<repo>/<files>, or an http(s) base URL serving GitHub-style tarballs)"
)
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}

T = TypeVar("T")


class DeadlineError(FetchError):
    """A download did not finish within its overall deadline (not retried)."""


class StalledError(FetchError):
    """A download received too little data for too long (retried while the deadline allows)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries per source
    base_delay: float = 1.0  # seconds before the 2nd try; doubles each time
    max_delay: float = 30.0
    timeout: float = 30.0  # socket timeout per connect/read: no byte for this long = stalled
    deadline: float = 1200.0  # seconds for one source, every attempt and wait included
    min_rate: float = 1024.0  # bytes/s averaged over rate_window; less = stalled (a dripping server)
    rate_window: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based); honours Retry-After, capped."""
        d = self.base_delay * (2 ** (attempt - 1))
        if retry_after is not None:
            d = max(d, retry_after)
        return min(d, self.max_delay)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridden by ``$ARCFORGE_RETRIES`` (tries) and ``$ARCFORGE_RETRY_DELAY`` (seconds)."""
        p = cls()
        try:
            attempts = int(os.environ.get("ARCFORGE_RETRIES") or p.attempts)
            base = float(os.environ.get("ARCFORGE_RETRY_DELAY") or p.base_delay)
            timeout = float(os.environ.get("ARCFORGE_FETCH_TIMEOUT") or p.timeout)
            deadline = float(os.environ.get("ARCFORGE_FETCH_DEADLINE") or p.deadline)
        except ValueError:
            raise FetchError(
                "ARCFORGE_RETRIES must be an integer and ARCFORGE_RETRY_DELAY, "
                "ARCFORGE_FETCH_TIMEOUT, ARCFORGE_FETCH_DEADLINE numbers (seconds)"
            ) from None
        if not (timeout > 0 and deadline > 0):  # also refuses nan
            raise FetchError("ARCFORGE_FETCH_TIMEOUT and ARCFORGE_FETCH_DEADLINE must be positive seconds")
        return cls(
            attempts=max(1, attempts),
            base_delay=max(0.0, base),
            max_delay=max(p.max_delay, base),
            timeout=timeout,
            deadline=deadline,
            min_rate=p.min_rate,
            rate_window=p.rate_window,
        )


DEFAULT_RETRY = RetryPolicy()


def github_base() -> str:
    return os.environ.get(GITHUB_URL_ENV) or DEFAULT_GITHUB_URL


def tarball_url(base: str, owner: str, repo: str, commit: str) -> str:
    return f"{base.rstrip('/')}/{owner}/{repo}/tar.gz/{commit}"


class Clock:
    """The deadline of one source's download, shared by its attempts (monotonic seconds)."""

    def __init__(self, policy: RetryPolicy, what: str, url: str) -> None:
        self.policy, self.what, self.url = policy, what, url
        self.end = time.monotonic() + policy.deadline

    def left(self) -> float:
        return self.end - time.monotonic()

    def check(self, received: int | None = None) -> None:
        if self.left() <= 0:
            got = f" ({received} bytes of this attempt received)" if received is not None else ""
            raise DeadlineError(
                f"{self.what}: download of {self.url} did not finish within the "
                f"{self.policy.deadline:g} s deadline{got}",
                hint="the server is too slow or stalls; retry later, use a mirror, or allow "
                "more time with ARCFORGE_FETCH_DEADLINE=SECONDS",
            )

    def socket_timeout(self) -> float:
        return max(0.01, min(self.policy.timeout, self.left()))


class Watch:
    """Timers over one HTTP exchange that shut its socket down when time is up, whatever trickles in: the
    status line and headers within ``clock.policy.timeout`` seconds, everything within the deadline."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.expired: str | None = None  # "headers" or "deadline" once a timer fired
        self._timers: list[threading.Timer] = []

    def arm(self, seconds: float, why: str, sock: socket.socket | None) -> threading.Timer | None:
        if sock is None:
            return None
        timer = threading.Timer(max(0.0, seconds), self._expire, (why, sock))
        timer.daemon = True
        timer.start()
        self._timers.append(timer)
        return timer

    def _expire(self, why: str, sock: socket.socket) -> None:
        self.expired = self.expired or why
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()

    def failed(self) -> None:
        """Raise the typed error for an exchange a timer cut short (nothing when none fired)."""
        if self.expired == "deadline":
            self.clock.end = min(self.clock.end, time.monotonic())
            self.clock.check()
        if self.expired == "headers":
            c = self.clock
            raise StalledError(
                f"{c.what}: {c.url} sent no complete status line and headers within "
                f"{min(c.policy.timeout, c.policy.deadline):g} s",
                hint=MIRROR_HINT,
            )

    def connection(self, base: type[http.client.HTTPConnection]) -> Callable[..., http.client.HTTPConnection]:
        watch = self

        class Connection(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                watch.arm(watch.clock.left(), "deadline", self.sock)

            def getresponse(self) -> http.client.HTTPResponse:
                timer = watch.arm(watch.clock.socket_timeout(), "headers", self.sock)
                try:
                    resp = super().getresponse()
                except (OSError, http.client.HTTPException):
                    watch.failed()
                    raise
                finally:
                    if timer is not None:
                        timer.cancel()
                if watch.expired:  # cut short mid-line: what was parsed is not the server's answer
                    resp.close()
                    watch.failed()
                return resp

        return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.watch.connection(http.client.HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.watch.connection(http.client.HTTPSConnection), req, context=self._context)  # type: ignore[attr-defined]


@contextlib.contextmanager
def open_watched(url: str, clock: Clock) -> Iterator[WatchedResponse]:
    """GET ``url`` under ``clock``: the response, read through ``WatchedResponse``; every timer is cancelled
    and the connection closed on the way out."""
    watch = Watch(clock)
    opener = urllib.request.build_opener(_HTTPHandler(watch), _HTTPSHandler(watch))
    req = urllib.request.Request(url, headers={"User-Agent": f"arcforge/{__version__}"})
    try:
        with opener.open(req, timeout=clock.socket_timeout()) as raw:
            resp = WatchedResponse(raw, clock)
            try:
                yield resp
            except Exception:  # a read cut short by the deadline looks like an early end: say why
                watch.failed()
                raise
    finally:
        watch.cancel()


class WatchedResponse:
    """``read(n)`` over an HTTP response that returns what one system call brings (never waits for a
    full ``n``), and enforces the deadline, the per-read timeout and the minimum rate."""

    def __init__(self, resp: http.client.HTTPResponse, clock: Clock) -> None:
        self._resp, self._clock = resp, clock
        self.headers = resp.headers
        self.received = 0
        self._window_start, self._window_bytes = time.monotonic(), 0

    def read(self, n: int = -1) -> bytes:
        clock, policy = self._clock, self._clock.policy
        clock.check(self.received)
        self._set_timeout(clock.socket_timeout())
        try:
            data = self._resp.read1(n if n and n > 0 else 1 << 16)
        except TimeoutError:
            clock.check(self.received)
            raise StalledError(
                f"{clock.what}: no data from {clock.url} for {policy.timeout:g} s "
                f"(after {self.received} bytes)",
                hint=MIRROR_HINT,
            ) from None
        self.received += len(data)
        now = time.monotonic()
        self._window_bytes += len(data)
        if now - self._window_start >= policy.rate_window:
            if self._window_bytes < policy.min_rate * policy.rate_window:
                raise StalledError(
                    f"{clock.what}: {clock.url} sent only {self._window_bytes} bytes in "
                    f"{now - self._window_start:.0f} s (at least {policy.min_rate:g} bytes/s are needed)",
                    hint=MIRROR_HINT,
                )
            self._window_start, self._window_bytes = now, 0
        return data

    def _set_timeout(self, seconds: float) -> None:
        sock = getattr(getattr(getattr(self._resp, "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(seconds)


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, urllib.error.HTTPError) and exc.headers is not None:
        value = exc.headers.get("Retry-After")
        if value and value.strip().isdigit():
            return float(value.strip())
    return None


def is_transient(exc: BaseException) -> bool:
    """Worth another try: server overload, rate limits, dropped or refused connections, timeouts."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT_STATUS or exc.code >= 500
    if isinstance(exc, urllib.error.URLError):
        # DNS failure = offline: no point retrying; certificate errors will not fix themselves either.
        reason = exc.reason
        return isinstance(reason, OSError) and not isinstance(
            reason, socket.gaierror | ssl.SSLCertVerificationError
        )
    return isinstance(
        exc, TruncatedArchiveError | StalledError | http.client.HTTPException | ConnectionError | TimeoutError
    )


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection dropped mid-download ({exc.partial and len(exc.partial)} bytes of the last read)"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, FetchError):
        return exc.message
    return str(exc) or type(exc).__name__


def _timed_out(exc: BaseException) -> bool:
    """A read or connect that timed out (the deadline is then checked first)."""
    return isinstance(exc, TimeoutError | socket.timeout) or (
        isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError)
    )


def _retry_delay(
    exc: BaseException, attempt: int, policy: RetryPolicy, clock: Clock, what: str, url: str
) -> float:
    """The wait before the next attempt; a ``DeadlineError`` saying why it failed when the deadline
    leaves no time for it."""
    delay = policy.delay(attempt, _retry_after(exc))
    if delay >= clock.left():  # no time left for another try: say why it failed
        raise DeadlineError(
            f"{what}: gave up on {url} after {attempt} attempt(s) within the "
            f"{policy.deadline:g} s deadline: {_describe(exc)}",
            hint=MIRROR_HINT,
        ) from None
    return delay


def _failure(exc: BaseException, attempt: int, what: str, url: str, host: str) -> FetchError:
    """The error for a download that will not be tried again: the host cannot be reached, a truncated
    archive out of attempts, or another failure."""
    if _unreachable(exc):
        return FetchError(
            f"{what}: cannot reach {host}: {_describe(exc)}"
            + (f" (after {attempt} attempts)" if attempt > 1 else ""),
            hint=MIRROR_HINT,
        )
    if isinstance(exc, FetchError):  # truncated archive, out of attempts
        return FetchError(f"{exc.message} (after {attempt} attempts)", hint=MIRROR_HINT)
    return FetchError(
        f"{what}: download of {url} failed after {attempt} attempt(s): {_describe(exc)}", hint=MIRROR_HINT
    )


def with_retries(
    fn: Callable[[int], T],
    *,
    url: str,
    what: str,
    policy: RetryPolicy = DEFAULT_RETRY,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Clock | None = None,
) -> T:
    """Run ``fn(attempt)`` until it succeeds, retrying transient errors; map failures to typed errors.

    ``what`` names the source in messages. HTTP 404/410 -> ``SourceUnavailableError``; host not reachable
    -> ``FetchError`` with a hint to use a mirror; other errors from ``fn`` that are ``ArcforgeError``
    (digest, unsafe archive) pass through untouched.
    """
    host = urllib.parse.urlsplit(url).netloc
    clock = clock or Clock(policy, what, url)
    for attempt in range(1, policy.attempts + 1):
        clock.check()
        try:
            return fn(attempt)
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            TruncatedArchiveError,
            StalledError,
        ) as exc:
            if _timed_out(exc):
                clock.check()
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (404, 410):
                raise SourceUnavailableError(
                    f"{what}: not found at {url} (HTTP {exc.code})",
                    hint="check the manifest's repo and commit, or the mirror",
                ) from None
            if is_transient(exc) and attempt < policy.attempts:
                delay = _retry_delay(exc, attempt, policy, clock, what, url)
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                sleep(delay)
                continue
            raise _failure(exc, attempt, what, url, host) from None
    raise AssertionError("unreachable")  # pragma: no cover
