"""Downloading the files of a Hub dataset at a pinned revision (the ``hub`` source kind's network side).

This module and ``publish`` are arcforge's only users of huggingface_hub. Importing it registers it as
the Hub client of ``arcforge.sources.hub_fetch`` (the sources stage never imports this later stage), which
calls in here only for a Hub source that the mirror does not hold.

- ``resolve_revision``: the full commit id a branch or tag names now (``HfApi.dataset_info``), for a source
  pinned by revision on its first fetch (and ``fetch --update``);
- ``list_files``: the repository's files at the revision (``HfApi.list_repo_tree``), with their sizes.
- ``download_file``: one file with ``hf_hub_download`` into arcforge's own Hub cache
  (``$ARCFORGE_HOME/hub-downloads``, huggingface_hub's cache layout): a download that is cut off leaves its
  ``.incomplete`` blob there and the next fetch resumes it with an HTTP range request.

Deadlines: every request has the per-read timeout of ``install_timeouts`` (``$ARCFORGE_HUB_TIMEOUT``), and
each call runs against the source's overall deadline (``RetryPolicy.deadline``): a call still running when
it passes is abandoned (its partial file stays for the next try) and the fetch fails with a clear message.
Transient failures (HTTP 5xx/429, timeouts, dropped connections) are retried with the fetch's backoff.
No token is sent: Hub sources are public datasets, and an endpoint set by ``$ARCFORGE_HUB_URL`` may be a
mirror that must not see one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from arcforge import paths
from arcforge.errors import FetchError, SourceUnavailableError
from arcforge.hub.publish import REPO_TYPE, TimeoutException, TransportError, install_timeouts
from arcforge.sources import hub_fetch
from arcforge.sources.download import Clock, DeadlineError, RetryPolicy

HUB_URL_ENV = "ARCFORGE_HUB_URL"  # another Hub endpoint (tests: a loopback server)
MIRROR_HINT = (
    "without Hub access, use a folder mirror holding the dataset's files under hf/<org>/<name>/: "
    "--mirror PATH or ARCFORGE_MIRROR=PATH"
)
T = TypeVar("T")


def endpoint() -> str | None:
    return os.environ.get(HUB_URL_ENV) or None


def downloads_dir() -> Path:
    return paths.home() / "hub-downloads"


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return status is None or status == 429 or status >= 500
    return isinstance(exc, TimeoutException | TransportError | ConnectionError | TimeoutError)


def _within(fn: Callable[[], T], clock: Clock) -> T:
    """``fn()`` in a helper thread, given at most the time left on ``clock``."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=run, name="hub-download", daemon=True)
    t.start()
    while t.is_alive():
        clock.check()  # past the deadline: DeadlineError (the thread is abandoned; it is a daemon)
        t.join(max(0.01, min(1.0, clock.left())))
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _call(
    fn: Callable[[], T], what: str, where: str, policy: RetryPolicy, clock: Clock, *, retry: bool = True
) -> T:
    """Run one Hub call with retries (``retry=False``: huggingface_hub's own backoff is enough) and the
    deadline; map huggingface_hub's errors to arcforge's."""
    install_timeouts()
    attempts = policy.attempts if retry else 1
    for attempt in range(1, attempts + 1):
        clock.check()
        try:
            return _within(fn, clock)
        except (GatedRepoError, RepositoryNotFoundError):
            raise SourceUnavailableError(
                f"{what}: dataset {where} not found on the Hub (or not public)",
                hint="check the manifest's repo, or use a mirror",
            ) from None
        except RevisionNotFoundError:
            raise SourceUnavailableError(
                f"{what}: revision not found: {where}",
                hint="check the manifest's commit (a full Hub commit id) or revision (a branch or tag)",
            ) from None
        except EntryNotFoundError:
            raise SourceUnavailableError(
                f"{what}: {where} is not in the dataset at that revision", hint="check the manifest's files"
            ) from None
        except (OfflineModeIsEnabled, LocalEntryNotFoundError) as e:
            raise FetchError(
                f"{what}: cannot reach the Hub for {where} ({type(e).__name__})", hint=MIRROR_HINT
            ) from None
        except DeadlineError:
            raise
        except Exception as e:
            if not _transient(e):
                raise FetchError(
                    f"{what}: the Hub refused {where}: {type(e).__name__}: {e}",
                    hint="check the manifest's repo and commit, or use a mirror",
                ) from None
            delay = policy.delay(attempt)
            if attempt == attempts or delay >= clock.left():
                raise FetchError(
                    f"{what}: the Hub failed for {where} after {attempt} attempt(s): {type(e).__name__}: {e}",
                    hint=MIRROR_HINT,
                ) from None
            threading.Event().wait(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def resolve_revision(repo_id: str, revision: str, *, what: str, policy: RetryPolicy, clock: Clock) -> str:
    """The commit id (``sha``) that the branch or tag ``revision`` of the dataset names now."""
    api = HfApi(endpoint=endpoint(), token=False)

    def sha() -> str:
        return api.dataset_info(repo_id, revision=revision).sha

    # a plain request (no backoff inside huggingface_hub): transient failures are retried here
    return _call(sha, what, f"{repo_id}@{revision}", policy, clock)


def list_files(
    repo_id: str, revision: str, *, what: str, policy: RetryPolicy, clock: Clock
) -> dict[str, int]:
    """``{path: size}`` of every file of the dataset at ``revision``."""
    api = HfApi(endpoint=endpoint(), token=False)

    def listing() -> dict[str, int]:
        tree = api.list_repo_tree(repo_id, recursive=True, revision=revision, repo_type=REPO_TYPE)
        return {f.path: int(getattr(f, "size", 0) or 0) for f in tree if type(f).__name__ == "RepoFile"}

    # API calls already go through huggingface_hub's backoff (5 tries on connection errors and 5xx)
    return _call(listing, what, f"{repo_id}@{revision}", policy, clock, retry=False)


def _bytes_counter(on_bytes: Callable[[int], None] | None) -> type:
    """A silent tqdm for ``hf_hub_download`` that hands each chunk's size to ``on_bytes``: arcforge's own
    progress (bars on a terminal, plain lines in a log) instead of huggingface_hub's bars."""
    from tqdm.auto import tqdm  # a dependency of huggingface_hub

    class _Counter(tqdm):
        def __init__(self, *args, **kwargs) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if n and on_bytes is not None:
                on_bytes(int(n))
            return super().update(n)

    return _Counter


def download_file(
    repo_id: str,
    revision: str,
    filename: str,
    *,
    what: str,
    policy: RetryPolicy,
    clock: Clock,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """The downloaded file (in arcforge's Hub cache; resumed when an earlier try was cut off). ``on_bytes``
    gets the size of each piece as it arrives."""
    counter = _bytes_counter(on_bytes)

    def get() -> Path:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                repo_type=REPO_TYPE,
                revision=revision,
                cache_dir=downloads_dir(),
                endpoint=endpoint(),
                token=False,
                tqdm_class=counter,
            )
        )

    return _call(get, what, f"{repo_id}@{revision}/{filename}", policy, clock)


def forget(path: Path) -> None:
    """Remove a downloaded file that failed its check (its blob too), so the next try downloads it again."""
    target = path.resolve()
    for p in (path, target):
        p.unlink(missing_ok=True)


class _Client:
    """This module as the ``HubClient`` of ``arcforge.sources.hub_fetch``."""

    endpoint = staticmethod(endpoint)
    resolve_revision = staticmethod(resolve_revision)
    list_files = staticmethod(list_files)
    download_file = staticmethod(download_file)
    forget = staticmethod(forget)


hub_fetch.set_client(_Client())
