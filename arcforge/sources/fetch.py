"""Fetch sources into the verified cache: ``$ARCFORGE_HOME/sources/<owner>/<repo>/<commit>/``.

For each manifest: if a valid cache exists (and not ``force``), nothing is downloaded. Otherwise the
manifest's files are taken from GitHub's tarball for the pinned commit (streamed, see ``archive``), or
from a mirror, into a temp folder under ``$ARCFORGE_HOME/tmp``; their digest (see ``lock``) is checked
against the pin (or recorded if there is none); then the folder is renamed into place. Any failure leaves
the cache as it was and removes the temp folder.

A cache folder holds the kept files in their repository layout plus ``.arcforge-source.json`` (name,
repo, commit, globs, digest), written before the rename, so a folder without it is never trusted.

Mirrors (``mirror=`` or ``$ARCFORGE_MIRROR``):

- a folder laid out ``<owner>/<repo>/<files>`` (like ``../shared/arc-sources``): files are copied;
- an ``http(s)://`` base URL serving ``{base}/{owner}/{repo}/tar.gz/{commit}`` like codeload.github.com.

A ``hub`` source (a Hugging Face dataset, ``arcforge.sources.hub_kind``) is at ``hf/<org>/<name>/<files>``
in a folder mirror, and is downloaded from the Hub otherwise (``arcforge.sources.hub_fetch``); its cache is
``$ARCFORGE_HOME/sources/hf/<org>/<name>/<commit>/``. One pinned by a branch or tag (``revision``) is
fetched at the commit locked on its first fetch (see ``lock``); from a folder mirror, with no commit to
lock, its cache is ``.../unresolved-<16 hex of its digest>/``.

With a mirror GitHub is not contacted; a source the mirror lacks is reported ``unavailable``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from arcforge import paths
from arcforge.errors import (
    ArcforgeError,
    DigestMismatchError,
    FetchError,
    ManifestError,
    SourceUnavailableError,
)
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.sources import archive, download, hub_fetch, lock
from arcforge.sources.archive import DEFAULT_LIMITS, ArchiveLimits
from arcforge.sources.download import DEFAULT_RETRY, RetryPolicy
from arcforge.sources.manifest import Manifest, matches_any
from arcforge.sources.staging import place, recover, staging_dir

MARKER = ".arcforge-source.json"
MIRROR_ENV = "ARCFORGE_MIRROR"
STATUSES = ("cached", "fetched", "failed", "unavailable")
FETCH_WORKERS = 4  # sources fetched in parallel (threads)
DIGEST_HINT = (
    "the source or mirror serves different files than were pinned; if the pin is outdated, "
    "update it (see README: Fetching sources)"
)


@dataclass
class FetchResult:
    """What happened to one source. ``status`` is one of ``STATUSES``."""

    name: str
    status: str
    path: Path | None = None  # the cache folder (cached/fetched)
    digest: str | None = None
    files: int = 0
    origin: str | None = None  # URL or mirror folder it came from (fetched)
    recorded_pin: bool = False  # True: no pin existed, the digest was recorded in `pin_path`
    pin_path: Path | None = None  # the lock file holding the pin used or recorded
    error: str | None = None
    hint: str | None = None
    seconds: float = 0.0
    commit: str | None = None  # the commit fetched; None: pinned by revision, unresolved (from a mirror)
    revision: str | None = None  # the branch or tag a source pinned by revision follows (its lock: commit)

    @property
    def ok(self) -> bool:
        return self.status in ("cached", "fetched")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path) if self.path else None
        d["pin_path"] = str(self.pin_path) if self.pin_path else None
        return d


@dataclass(frozen=True)
class Mirror:
    kind: str  # "folder" | "url"
    location: str

    def __str__(self) -> str:
        return self.location


@dataclass
class _Fetched:
    staging: Path
    hashes: dict[str, str] = field(default_factory=dict)
    origin: str = ""


# --- cache -------------------------------------------------------------------------------------------------
UNRESOLVED = "unresolved-"  # cache folder prefix of a source pinned by revision whose commit is unknown


def cache_dir(m: Manifest, digest: str | None = None) -> Path | None:
    """``<owner>/<repo>/<commit>/`` (see ``paths.source_dir``). A source pinned by revision whose commit is
    not locked (fetched from a mirror) is kept by content: ``unresolved-<16 hex of its digest>/``, the
    digest given or its pin's; ``None`` when there is neither (it was never fetched)."""
    folder = m.commit
    if not folder:
        if digest is None:
            pin = lock.find_pin(m) if m.revision else None
            digest = pin.digest if pin is not None else None
        if not digest:
            return None
        folder = UNRESOLVED + digest.removeprefix("sha256:")[:16]
    return paths.source_dir(m.owner, m.repo_name, folder, m.kind, m.cache_key)


def read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_path(m: Manifest, *, verify: bool = False) -> Path | None:
    """The cache folder of ``m`` if it holds a completed fetch of this repo@commit with these globs whose
    digest equals the pin (when there is one); ``None`` otherwise. ``verify=True`` also re-hashes every
    kept file (a few hundred ms for the largest source) instead of trusting the marker. A source pinned by
    revision is looked for at the commit its lock holds (``lock.locked``)."""
    if m.revision and not m.commit:
        m = lock.locked(m)
    folder = cache_dir(m)
    marker = read_marker(folder) if folder is not None else None
    if marker is None or (marker.get("repo"), marker.get("commit") or "") != (m.repo, m.commit):
        return None
    if marker.get("files") != list(m.files):
        return None
    pin = lock.find_pin(m)
    if pin is not None and marker.get("digest") != pin.digest:
        return None
    if verify and lock.digest_tree(folder, m.files)[0] != marker.get("digest"):
        return None
    return folder


# --- mirrors ---------------------------------------------------------------------------------------------
def resolve_mirror(mirror: str | Path | None) -> Mirror | None:
    """Parse ``--mirror`` (or ``$ARCFORGE_MIRROR`` when ``mirror`` is None): a folder or an http(s) URL."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    if mirror is None or str(mirror) == "":
        return None
    text = str(mirror)
    if text.startswith(("http://", "https://")):
        return Mirror("url", text.rstrip("/"))
    if text.startswith("file://"):
        text = text[len("file://") :]
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise FetchError(
            f"mirror folder {folder} does not exist",
            hint="--mirror takes a folder laid out <owner>/<repo>/<files>, or an http(s) URL",
        )
    return Mirror("folder", str(folder.resolve()))


def _copy_from_folder(m: Manifest, mirror: Mirror, progress: Progress, key: str) -> _Fetched:
    root = lock.mirror_root(Path(mirror.location), m)
    missing = hub_fetch.mirror_missing(m, root, mirror.location)
    if missing is not None:
        raise missing
    rels = lock.kept_files(root, m.files)
    for rel in rels:
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(rel).decode("utf-8", "replace")
            raise FetchError(
                f"{m.name}: {root / shown}: the file name is not valid UTF-8; it cannot be "
                "named in the source's digest",
                hint="rename the file in the mirror",
            ) from None
    progress.update(key, completed=0, total=sum((root / r).stat().st_size for r in rels))
    staging = staging_dir(m.name)
    try:
        out = _Fetched(staging, origin=str(root))
        for rel in rels:
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            out.hashes[rel] = _copy_hashing(root / rel, target, lambda n: progress.advance(key, n))
        return out
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _copy_hashing(src: Path, dst: Path, on_bytes) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(src, "rb") as fi, open(dst, "xb") as fo:
        while chunk := fi.read(1 << 20):
            h.update(chunk)
            fo.write(chunk)
            on_bytes(len(chunk))
    return h.hexdigest()


def _download(
    m: Manifest,
    base: str,
    progress: Progress,
    key: str,
    retry: RetryPolicy,
    limits: ArchiveLimits,
    pin: lock.Pin | None = None,
) -> _Fetched:
    url = download.tarball_url(base, m.owner, m.repo_name, m.commit)
    clock = download.Clock(retry, m.name, url)

    def attempt(n: int) -> _Fetched:
        staging = staging_dir(m.name)
        try:
            with download.open_watched(url, clock) as resp:
                length = resp.headers.get("Content-Length")
                progress.update(key, completed=0, total=int(length) if length and length.isdigit() else None)
                hashes = archive.extract_tar_gz(
                    resp,
                    staging,
                    lambda rel: matches_any(rel, m.files),
                    archive=f"{m.name} ({url})",
                    limits=limits,
                    on_raw_bytes=lambda k: progress.advance(key, k),
                    max_kept_bytes=max_kept_bytes,
                )
            return _Fetched(staging, hashes, url)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    max_kept_bytes = pin.bytes if pin is not None and pin.bytes else None
    try:
        return download.with_retries(attempt, url=url, what=m.name, policy=retry, clock=clock)
    except archive.OverPinnedSizeError as e:  # stopped early: the digest could never have matched
        assert pin is not None
        raise DigestMismatchError(
            f"{m.name}: content from {url} is larger than the {pin.bytes} bytes {pin.lock_path} pins with "
            f"digest {pin.digest}, so it cannot match; the cache was left as it was ({e.message})",
            hint=DIGEST_HINT,
        ) from None


def _from_hub(
    m: Manifest, mirror: Mirror | None, progress: Progress, retry: RetryPolicy, pin: lock.Pin | None
) -> _Fetched:
    if mirror is not None:  # an http(s) mirror serves GitHub tarballs, not Hub datasets
        raise SourceUnavailableError(
            f"{m.name}: the mirror {mirror.location} serves GitHub tarballs, not the Hub dataset {m.repo}",
            hint="use a folder mirror holding hf/<org>/<name>/, or no mirror",
        )
    staging = staging_dir(m.name)
    try:
        hashes, origin = hub_fetch.from_hub(
            m,
            staging,
            pin,
            retry,
            on_total=lambda n: progress.update(m.name, completed=0, total=n),
            on_bytes=lambda n: progress.advance(m.name, n),
        )
        return _Fetched(staging, hashes, origin)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --- fetching ----------------------------------------------------------------------------------------------
def fetch_source(
    m: Manifest,
    *,
    mirror: Mirror | None = None,
    force: bool = False,
    update: bool = False,
    progress: Progress | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> FetchResult:
    """Fetch one source (see the module docstring). Errors become a ``failed``/``unavailable`` result.

    A source pinned by revision is fetched at the commit its lock holds; the first fetch from the Hub
    resolves the revision and locks the commit. ``update`` moves it on: the revision is resolved again (a
    folder mirror: its files are taken as they are, commit unresolved) and the lock follows."""
    progress = progress or NULL_PROGRESS
    t0 = time.perf_counter()
    try:
        m, pin, hit = _start(m, mirror, force, update, retry, t0)
        if hit is not None:
            return hit
        progress.start(m.name, m.name, None, unit="bytes")
        try:
            got = _get(m, mirror, progress, retry, limits, pin)
        finally:
            progress.finish(m.name)
        try:
            return _verify_and_place(m, got, pin, t0)
        finally:
            shutil.rmtree(got.staging, ignore_errors=True)  # gone already after a successful rename
    except ArcforgeError as e:
        status = "unavailable" if isinstance(e, SourceUnavailableError) else "failed"
        return FetchResult(m.name, status, error=e.message, hint=e.hint, seconds=time.perf_counter() - t0)
    except OSError as e:  # local disk trouble (permissions, disk full) while copying or placing
        return FetchResult(m.name, "failed", error=f"{m.name}: {e}", seconds=time.perf_counter() - t0)


def _start(
    m: Manifest, mirror: Mirror | None, force: bool, update: bool, retry: RetryPolicy, t0: float
) -> tuple[Manifest, lock.Pin | None, FetchResult | None]:
    """``m`` at the commit to fetch, the pin its files are checked against, and the ``cached`` result when
    nothing is to be fetched. The cache is looked at before the Hub is asked (a source fetched from a mirror
    keeps its unresolved commit until ``force`` or ``update``); with ``update``, again at the commit the
    revision names now (from a mirror there is none: its files are copied)."""
    m = lock.locked(m)
    if not force and not update:
        hit = _cached(m, t0)
        if hit is not None:
            return m, None, hit
    m, pin = hub_fetch.pinned(m, mirror is not None, update, retry)
    if update and m.commit and not force:
        return m, pin, _cached(m, t0)
    return m, pin, None


def _cached(m: Manifest, t0: float) -> FetchResult | None:
    """The ``cached`` result when the cache holds ``m``'s files, verified."""
    folder = cached_path(m, verify=True)
    if folder is None:
        return None
    marker = read_marker(folder) or {}
    pin = lock.find_pin(m)
    return FetchResult(
        m.name,
        "cached",
        folder,
        marker.get("digest"),
        int(marker.get("count", 0)),
        pin_path=pin.lock_path if pin else None,
        seconds=time.perf_counter() - t0,
        commit=m.commit or None,
        revision=m.revision or None,
    )


def _get(
    m: Manifest,
    mirror: Mirror | None,
    progress: Progress,
    retry: RetryPolicy,
    limits: ArchiveLimits,
    pin: lock.Pin | None,
) -> _Fetched:
    """The source's files in a staging folder: from a folder mirror, the Hub or a GitHub tarball."""
    if mirror is not None and mirror.kind == "folder":
        return _copy_from_folder(m, mirror, progress, m.name)
    if m.kind == paths.HUB_KIND:
        return _from_hub(m, mirror, progress, retry, pin)
    base = mirror.location if mirror is not None else download.github_base()
    return _download(m, base, progress, m.name, retry, limits, pin)


def _verify_and_place(m: Manifest, got: _Fetched, pin: lock.Pin | None, t0: float) -> FetchResult:
    if not got.hashes:
        raise FetchError(
            f"{m.name}: no file in {got.origin} matches the manifest's files ({', '.join(m.files)})",
            hint=f"check 'files' in {m.path}",
        )
    hub = m.kind == paths.HUB_KIND
    if hub:
        hub_fetch.check_hashes(m, got.hashes, pin, got.origin)
    digest = lock.digest_from_hashes(got.hashes)
    if pin is not None and digest != pin.digest:
        raise DigestMismatchError(
            f"{m.name}: content from {got.origin} has digest {digest}, but {pin.lock_path} pins "
            f"{pin.digest}; "
            "the cache was left as it was",
            hint=hub_fetch.digest_hint(m) if hub else DIGEST_HINT,
        )
    _write_marker(m, got, digest)
    dest = cache_dir(m, digest)
    assert dest is not None  # a commit, or the digest: never neither
    place(got.staging, dest)
    recorded = pin is None or pin.commit != m.commit  # a revision's commit resolved after a mirror fetch
    nbytes = sum((dest / rel).stat().st_size for rel in got.hashes) if recorded else 0
    pin_path = (
        lock.record_pin(m, digest, len(got.hashes), nbytes, dict(got.hashes) if hub else None)
        if recorded
        else pin.lock_path
    )
    return FetchResult(
        m.name,
        "fetched",
        dest,
        digest,
        len(got.hashes),
        got.origin,
        recorded,
        pin_path,
        seconds=time.perf_counter() - t0,
        commit=m.commit or None,
        revision=m.revision or None,
    )


def _write_marker(m: Manifest, got: _Fetched, digest: str) -> None:
    """``.arcforge-source.json`` in the staging folder: what it holds (written before the rename)."""
    marker = {
        "name": m.name,
        "kind": m.kind,
        "repo": m.repo,
        "commit": m.commit or None,  # None: pinned by revision, fetched from a mirror (unresolved)
        "files": list(m.files),
        "digest": digest,
        "count": len(got.hashes),
        "origin": got.origin,
        "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if m.revision:
        marker["revision"] = m.revision
    (got.staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def fetch_sources(
    manifests: Iterable[Manifest],
    *,
    mirror: str | Path | None = None,
    force: bool = False,
    update: bool = False,
    progress: Progress | None = None,
    workers: int = FETCH_WORKERS,
    retry: RetryPolicy | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> list[FetchResult]:
    """Fetch several sources in parallel (``workers`` threads); results in the order given.

    ``mirror``: a folder or http(s) URL (see the module docstring); ``None`` reads ``$ARCFORGE_MIRROR``.
    ``retry``: backoff policy for HTTP (default: ``RetryPolicy.from_env()``). ``update``: sources pinned by
    revision move on to the commit it names now (see ``fetch_source``); the others are fetched as usual.
    Raises only for a bad ``mirror`` or manifests that clash; per-source problems are in the results.
    """
    retry = retry or RetryPolicy.from_env()
    ms = list({m.name: m for m in manifests}.values())
    seen: dict[Path, Manifest] = {}
    for m in ms:
        folder = cache_dir(lock.locked(m))
        if folder is None:  # pinned by revision, never fetched: its commit is not known yet
            continue
        other = seen.setdefault(folder, m)
        if other is not m and other.files != m.files:
            raise ManifestError(
                f"{m.path}: {m.name} and {other.name} share {m.repo}@{m.short_commit} but keep "
                "different files; one cache folder cannot hold both"
            )
    mir = resolve_mirror(mirror)
    if not ms:
        return []
    recover()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ms))), thread_name_prefix="fetch") as pool:
        futures = [
            pool.submit(
                fetch_source,
                m,
                mirror=mir,
                force=force,
                update=update,
                progress=progress,
                retry=retry,
                limits=limits,
            )
            for m in ms
        ]
        return [f.result() for f in futures]
