"""HTTP downloads with retries: the one place arcforge talks to GitHub (or an HTTP mirror).

Tarballs are fetched from ``{base}/{owner}/{repo}/tar.gz/{commit}``, GitHub's codeload layout. ``base`` is
``https://codeload.github.com``, or ``$ARCFORGE_GITHUB_URL`` when set (tests point it at a loopback
server), or an HTTP mirror's base URL. Only the standard library is used.

Transient failures are retried with exponential backoff (``RetryPolicy``): HTTP 408/425/429/5xx,
refused/reset/dropped connections, timeouts, and bodies that end early. A name that does not resolve
(no network) is not retried. Each attempt starts the download from the beginning.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from arcforge import __version__
from arcforge.archive import TruncatedArchiveError
from arcforge.errors import FetchError, SourceUnavailableError

GITHUB_URL_ENV = "ARCFORGE_GITHUB_URL"
DEFAULT_GITHUB_URL = "https://codeload.github.com"
MIRROR_HINT = ("without GitHub access, use a mirror: --mirror PATH_OR_URL or ARCFORGE_MIRROR=... "
               "(a folder laid out <owner>/<repo>/<files>, or an http(s) base URL serving GitHub-style tarballs)")
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total tries per source
    base_delay: float = 1.0  # seconds before the 2nd try; doubles each time
    max_delay: float = 30.0
    timeout: float = 60.0  # socket timeout per connect/read

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based); honours Retry-After, capped."""
        d = self.base_delay * (2 ** (attempt - 1))
        if retry_after is not None:
            d = max(d, retry_after)
        return min(d, self.max_delay)


    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, overridden by ``$ARCFORGE_RETRIES`` (attempts) and ``$ARCFORGE_RETRY_DELAY`` (seconds)."""
        p = cls()
        try:
            attempts = int(os.environ.get("ARCFORGE_RETRIES") or p.attempts)
            base = float(os.environ.get("ARCFORGE_RETRY_DELAY") or p.base_delay)
        except ValueError:
            raise FetchError("ARCFORGE_RETRIES must be an integer and ARCFORGE_RETRY_DELAY a number") from None
        return cls(attempts=max(1, attempts), base_delay=max(0.0, base), max_delay=max(p.max_delay, base),
                   timeout=p.timeout)


DEFAULT_RETRY = RetryPolicy()


def github_base() -> str:
    return os.environ.get(GITHUB_URL_ENV) or DEFAULT_GITHUB_URL


def tarball_url(base: str, owner: str, repo: str, commit: str) -> str:
    return f"{base.rstrip('/')}/{owner}/{repo}/tar.gz/{commit}"


def open_url(url: str, timeout: float) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": f"arcforge/{__version__}"})
    return urllib.request.urlopen(req, timeout=timeout)


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
        return isinstance(reason, OSError) and not isinstance(reason, socket.gaierror | ssl.SSLCertVerificationError)
    return isinstance(exc, TruncatedArchiveError | http.client.HTTPException | ConnectionError | TimeoutError)


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection dropped mid-download ({exc.partial and len(exc.partial)} bytes of the last read)"
    return str(exc) or type(exc).__name__


def with_retries(fn: Callable[[int], T], *, url: str, what: str, policy: RetryPolicy = DEFAULT_RETRY,
                 on_retry: Callable[[int, BaseException, float], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``fn(attempt)`` until it succeeds, retrying transient errors; map failures to typed errors.

    ``what`` names the source in messages. HTTP 404/410 -> ``SourceUnavailableError``; host not reachable
    -> ``FetchError`` with a hint to use a mirror; other errors from ``fn`` that are ``ArcforgeError``
    (digest, unsafe archive) pass through untouched.
    """
    host = urllib.parse.urlsplit(url).netloc
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn(attempt)
        except (urllib.error.URLError, http.client.HTTPException, OSError, TruncatedArchiveError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code in (404, 410):
                raise SourceUnavailableError(f"{what}: not found at {url} (HTTP {exc.code})",
                                             hint="check the manifest's repo and commit, or the mirror") from None
            if is_transient(exc) and attempt < policy.attempts:
                delay = policy.delay(attempt, _retry_after(exc))
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                sleep(delay)
                continue
            if _unreachable(exc):
                raise FetchError(f"{what}: cannot reach {host}: {_describe(exc)}"
                                 + (f" (after {attempt} attempts)" if attempt > 1 else ""),
                                 hint=MIRROR_HINT) from None
            if isinstance(exc, FetchError):  # truncated archive, out of attempts
                raise FetchError(f"{exc.message} (after {attempt} attempts)", hint=MIRROR_HINT) from None
            raise FetchError(f"{what}: download of {url} failed after {attempt} attempt(s): {_describe(exc)}",
                             hint=MIRROR_HINT) from None
    raise AssertionError("unreachable")  # pragma: no cover

