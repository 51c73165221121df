"""Fetching a ``hub`` source (see ``arcforge.sources.hub_kind``) into a staging folder.

From a folder mirror the files are copied from ``<mirror>/hf/<org>/<name>/``; otherwise the repository's
file list at the pinned commit is read from the Hub (a source pinned by a branch or tag has it resolved to
its commit first, ``resolve_revision``), the files the manifest keeps are downloaded and
hard-linked (or copied) into the staging folder. Every file is hashed as it is placed and checked at once
against its sha256 in ``digests.lock`` when the lock pins one, so a wrong file is named and never reaches
the cache.

The Hub is reached through a ``HubClient``: ``arcforge.hub.download`` (the hub stage, the only importer of
huggingface_hub) registers one with ``set_client`` when it is imported. The sources stage never imports the
hub stage; ``arcforge fetch`` imports ``arcforge.hub.download`` when a Hub source is to be fetched, and a
library caller does the same (or registers a client of its own).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from arcforge.errors import DigestMismatchError, FetchError, SourceUnavailableError
from arcforge.sources import lock
from arcforge.sources.download import Clock, RetryPolicy
from arcforge.sources.manifest import COMMIT_RE, Manifest, matches_any

DIGEST_HINT = (
    "the Hub or the mirror serves a different file than was pinned; if the pin is outdated, "
    "update it (see docs/sources.md)"
)


class HubClient(Protocol):
    """What fetching a Hub source needs from the Hub (see ``arcforge.hub.download``)."""

    def endpoint(self) -> str | None: ...

    def resolve_revision(
        self, repo_id: str, revision: str, *, what: str, policy: RetryPolicy, clock: Clock
    ) -> str: ...

    def list_files(
        self, repo_id: str, revision: str, *, what: str, policy: RetryPolicy, clock: Clock
    ) -> dict[str, int]: ...

    def download_file(
        self,
        repo_id: str,
        revision: str,
        filename: str,
        *,
        what: str,
        policy: RetryPolicy,
        clock: Clock,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path: ...

    def forget(self, path: Path) -> None: ...


_client: HubClient | None = None


def set_client(client: HubClient | None) -> None:
    """Register the client Hub sources are downloaded with (``arcforge.hub.download`` does on import)."""
    global _client
    _client = client


def _get_client(m: Manifest) -> HubClient:
    if _client is None:
        raise FetchError(
            f"{m.name}: no Hub client is registered to download this Hub dataset",
            hint="import arcforge.hub.download first (arcforge fetch does), or use a folder mirror",
        )
    return _client


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return h.hexdigest()


def digest_hint(m: Manifest) -> str:
    """What to do when a Hub source's files differ from their pins."""
    if m.revision:
        return (
            f"the files were locked for revision {m.revision!r} on an earlier fetch; to move on to what it "
            f"holds now: arcforge fetch --update {m.name}"
        )
    return DIGEST_HINT


def resolve_revision(m: Manifest, retry: RetryPolicy) -> str:
    """The full commit id that ``m``'s branch or tag names on the Hub now."""
    client = _get_client(m)
    origin = f"{client.endpoint() or 'https://huggingface.co'}/datasets/{m.repo}@{m.revision}"
    clock = Clock(retry, m.name, origin)
    commit = client.resolve_revision(m.repo, m.revision, what=m.name, policy=retry, clock=clock)
    if not isinstance(commit, str) or not COMMIT_RE.match(commit):
        raise FetchError(
            f"{m.name}: the Hub answered {commit!r} as the commit of {origin}, not a full 40-hex commit id",
            hint="try again later, or use a folder mirror",
        )
    return commit


def pinned(m: Manifest, mirror: bool, update: bool, retry: RetryPolicy) -> tuple[Manifest, lock.Pin | None]:
    """``m`` at the commit to fetch, and the pin its files are checked against. A source pinned by revision
    keeps its locked commit; without one (or with ``update``) the Hub resolves the revision, unless a
    ``mirror`` serves it: a mirror cannot say which commit it holds (commit ``""``: unresolved). ``update``
    drops the old pin."""
    m = lock.locked(m)
    if not m.revision or (m.commit and not update):
        return m, lock.find_pin(m)
    pin = None if update else lock.find_pin(m)  # without update: the digests a mirror fetch recorded
    if mirror:
        return replace(m, commit=""), pin
    return replace(m, commit=resolve_revision(m, retry)), pin


def check_file(m: Manifest, rel: str, digest: str, pin: lock.Pin | None, origin: str) -> None:
    """Refuse a file whose sha256 differs from the one pinned for it."""
    want = (pin.sha256 or {}).get(rel) if pin is not None else None
    if want is not None and want != digest:
        raise DigestMismatchError(
            f"{m.name}: {rel} from {origin} has sha256 {digest}, but {pin.lock_path} pins "
            f"{want}; the cache was left as it was",
            hint=digest_hint(m),
        )


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src.resolve(), dst)  # the Hub cache's blob itself: no second copy of a multi-GB file
    except OSError:
        shutil.copyfile(src, dst)


def from_hub(
    m: Manifest,
    staging: Path,
    pin: lock.Pin | None,
    retry: RetryPolicy,
    on_total: Callable[[int], None],
    on_bytes: Callable[[int], None],
) -> tuple[dict[str, str], str]:
    """Download the kept files of ``m`` into ``staging``; returns ``({path: sha256}, origin)``."""
    download = _get_client(m)
    origin = f"{download.endpoint() or 'https://huggingface.co'}/datasets/{m.repo}@{m.commit}"
    clock = Clock(retry, m.name, origin)
    listing = download.list_files(m.repo, m.commit, what=m.name, policy=retry, clock=clock)
    wanted = sorted(rel for rel in listing if matches_any(rel, m.files))
    if not wanted:
        raise SourceUnavailableError(
            f"{m.name}: no file of {origin} matches the manifest's files ({', '.join(m.files)})",
            hint=f"check 'files' in {m.path}",
        )
    total = sum(listing[r] for r in wanted)
    if pin is not None and pin.bytes and total > pin.bytes:
        raise DigestMismatchError(
            f"{m.name}: the files at {origin} add up to {total} bytes, more than the "
            f"{pin.bytes} that {pin.lock_path} pins",
            hint=digest_hint(m),
        )
    on_total(total)
    hashes: dict[str, str] = {}
    for rel in wanted:
        got = download.download_file(
            m.repo, m.commit, rel, what=m.name, policy=retry, clock=clock, on_bytes=on_bytes
        )
        digest = sha256_file(got)
        try:
            check_file(m, rel, digest, pin, origin)
        except DigestMismatchError:
            download.forget(got)
            raise
        _place(got, staging / rel)
        hashes[rel] = digest
    return hashes, origin


def mirror_missing(m: Manifest, root: Path, mirror: str) -> SourceUnavailableError | None:
    """Why a folder mirror cannot serve ``m`` (``None`` when it holds some of its files)."""
    if not root.is_dir():
        return SourceUnavailableError(
            f"{m.name}: {m.repo} is not in the mirror {mirror}", hint=f"expected the folder {root}"
        )
    if not lock.kept_files(root, m.files):
        return SourceUnavailableError(
            f"{m.name}: the mirror {mirror} holds {m.repo} but none of the files this "
            f"source keeps ({', '.join(m.files)})",
            hint=f"add them under {root}, or fetch without the mirror",
        )
    return None


def check_hashes(m: Manifest, hashes: dict[str, str], pin: lock.Pin | None, origin: str) -> None:
    """Per-file check of files copied from a mirror (the Hub path checks each file as it arrives)."""
    for rel, digest in hashes.items():
        check_file(m, rel, digest, pin, origin)
    if pin is not None and pin.sha256:
        missing = sorted(set(pin.sha256) - set(hashes))
        if missing:
            raise FetchError(
                f"{m.name}: {origin} lacks {missing[0]}"
                + (f" and {len(missing) - 1} more pinned file(s)" if len(missing) > 1 else ""),
                hint=digest_hint(m),
            )
