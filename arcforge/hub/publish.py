"""Push a built dataset to the Hugging Face Hub as one atomic commit, and read published datasets back.

This is the only module of arcforge that imports ``huggingface_hub`` (2.x). The pure parts (which files,
which operations, the license gate) live in ``arcforge.hub.plan``.

``publish`` does, in order (every call on the injected ``HfApi``):

1. local checks, no network: repo id, provenance, the repo tree, the license gate;
2. ``get_token()`` (``HF_TOKEN`` or ``hf auth login``); none -> "not logged in". The token is handed to
   ``HfApi(token=...)`` and never printed, logged or written;
3. ``create_repo(exist_ok=True)`` (skipped for ``--create-pr``: a PR goes to an existing repo);
4. ``create_branch(exist_ok=True)`` for ``--revision BRANCH`` other than ``main`` (not with a PR);
5. ``repo_info(revision)`` -> the head commit (``parent_commit``) and visibility;
6. ``list_repo_files(revision=head)`` -> remote files, to delete shards of a previous build;
7. ONE ``create_commit(..., parent_commit=head)`` with every add and delete: if anyone committed in
   between, the Hub refuses it (412/409) and nothing changes;
8. ``create_tag(tag, revision=<new commit>)`` for ``--tag``.

``plan`` (``--dry-run``) and ``export_tree`` (``--to-dir``) make no remote call at all, not even auth.

Deadlines: huggingface_hub's shared HTTP client has no timeout by default (a Hub that accepts the
connection and never answers would hang forever). Before any Hub call arcforge installs a client with a
timeout of ``$ARCFORGE_HUB_TIMEOUT`` seconds (default 60) for connecting, each read, each write and
getting a pooled connection. Some calls pass ``timeout=None`` themselves and huggingface_hub retries
dropped connections with backoff, so every call but the commit (whose uploads take as long as the data
needs) also runs under a total deadline of ``CALL_DEADLINE_FACTOR`` times that timeout, and
``download_dataset`` fails once the download has received no byte for that long.

Answers are data: one of the wrong shape (a list for an object, a missing field, garbage instead of JSON)
is a ``PublishError`` naming the call, never a ``KeyError`` from inside huggingface_hub. huggingface_hub
caches the Hub's agent-harness registry in ``$HF_HOME/.agent_harnesses.json``; a damaged one breaks every
request, so it is checked first and named, with how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    get_token,
    set_client_factory,
    snapshot_download,
)
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

try:  # the client huggingface_hub makes by default (its headers hook, redirects); we only add a timeout
    from huggingface_hub.utils._http import default_client_factory
except ImportError:  # pragma: no cover - moved in a later huggingface_hub: a plain client still works
    default_client_factory = None

try:  # huggingface_hub 2.x talks HTTP through httpx2, 1.x through httpx
    import httpx2 as _httpx
    from httpx2 import TimeoutException, TransportError
except ImportError:  # pragma: no cover
    import httpx as _httpx
    from httpx import TimeoutException, TransportError

from arcforge import __version__
from arcforge.build.provenance import Provenance, read_provenance
from arcforge.errors import FetchError, PublishError, ShardError, SourceUnavailableError, register_secret
from arcforge.hub.calls import CallDeadline, bounded, harness_cache_problem, watched
from arcforge.hub.plan import (
    Operation,
    RepoTree,
    check_sources,
    collect_files,
    is_shard_path,
    plan_operations,
    write_tree,
)
from arcforge.progress import Progress
from arcforge.sources.manifest import REPO_RE

T = TypeVar("T")
HUB_TIMEOUT_ENV = "ARCFORGE_HUB_TIMEOUT"
DEFAULT_HUB_TIMEOUT = 60.0
REPO_TYPE = "dataset"
DEFAULT_REVISION = "main"
LOGIN_HINT = "set HF_TOKEN to a token with write access, or run `hf auth login`"
CALL_DEADLINE_FACTOR = 4  # a Hub call's total deadline, in ARCFORGE_HUB_TIMEOUTs (retries included)
ODD_ANSWER = (KeyError, TypeError, AttributeError, IndexError, ValueError)  # what a malformed answer raises
ODD_HINT = "retry later; if it persists, check HF_ENDPOINT (the Hub's address) and any proxy in between"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class PublishOptions:
    """What the user asked for (the CLI flags)."""

    repo_id: str
    private: bool = False
    revision: str | None = None  # branch; None = main
    tag: str | None = None
    create_pr: bool = False
    message: str | None = None
    allow_unknown_license: bool = False

    @property
    def branch(self) -> str:
        return self.revision or DEFAULT_REVISION


@dataclass
class PublishResult:
    """What happened (or would happen). ``deletions_known`` is False when the Hub was not contacted."""

    repo_id: str
    revision: str
    operations: list[Operation]
    mode: str  # "publish" | "dry-run" | "to-dir"
    deletions_known: bool
    skipped: list[str] = field(default_factory=list)
    to_dir: str | None = None
    parent_commit: str | None = None
    commit_oid: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None
    tag: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(op.size or 0 for op in self.operations)

    def to_dict(self) -> dict:
        return {
            "repo_id": self.repo_id,
            "revision": self.revision,
            "mode": self.mode,
            "operations": [op.to_dict() for op in self.operations],
            "additions": sum(op.kind == "add" for op in self.operations),
            "deletions": sum(op.kind == "delete" for op in self.operations),
            "deletions_known": self.deletions_known,
            "bytes": self.total_bytes,
            "skipped": self.skipped,
            "to_dir": self.to_dir,
            "parent_commit": self.parent_commit,
            "commit_oid": self.commit_oid,
            "commit_url": self.commit_url,
            "pr_url": self.pr_url,
            "tag": self.tag,
        }


# --- local preparation (no network) -------------------------------------------------------------------------
def _validate_options(opts: PublishOptions) -> None:
    if not REPO_RE.match(opts.repo_id):
        raise PublishError(
            f"--repo-id {opts.repo_id!r} is not of the form ORG/NAME", hint="e.g. --repo-id my-org/arc-corpus"
        )
    if opts.tag and opts.create_pr:
        raise PublishError(
            "--tag cannot be combined with --create-pr (the commit is not on a branch yet)",
            hint="merge the pull request, then tag it on the Hub or re-publish with --tag",
        )


def prepare(
    out: Path, opts: PublishOptions, *, progress: Progress | None = None
) -> tuple[RepoTree, Provenance]:
    """Every local check, in the order that fails fastest: options, provenance, the tree, the license gate."""
    _validate_options(opts)
    prov = read_provenance(out)
    tree = collect_files(out, progress=progress)
    check_sources(tree, prov, allow_unknown_license=opts.allow_unknown_license)
    _check_shards(out)
    return tree, prov


def _check_shards(out: Path) -> None:
    """Read every shard through the one reader (schema, row groups, grids): a damaged shard is refused
    before anything is planned or sent."""
    from arcforge import shards

    try:
        for _ in shards.iter_batches(out, batch_size=4096):
            pass
    except ShardError as e:
        raise PublishError(f"{e.message}; nothing was published", hint=e.hint) from None


def plan(out: Path, opts: PublishOptions, *, progress: Progress | None = None) -> PublishResult:
    """``--dry-run``: the exact additions (path, size, sha256). No remote call; deletions are unknown."""
    tree, _ = prepare(out, opts, progress=progress)
    return PublishResult(
        opts.repo_id,
        opts.branch,
        plan_operations(tree, None),
        "dry-run",
        deletions_known=False,
        skipped=list(tree.skipped),
    )


def export_tree(
    out: Path, dest: Path, opts: PublishOptions, *, progress: Progress | None = None
) -> PublishResult:
    """``--to-dir``: write exactly the repo tree that would be pushed. No remote call."""
    tree, _ = prepare(out, opts, progress=progress)
    write_tree(tree, dest)
    return PublishResult(
        opts.repo_id,
        opts.branch,
        plan_operations(tree, None),
        "to-dir",
        deletions_known=False,
        skipped=list(tree.skipped),
        to_dir=str(dest),
    )


def commit_message(tree: RepoTree, prov: Provenance, opts: PublishOptions) -> tuple[str, str]:
    """(title, description) of the commit; the description lists every source's origin and license."""
    n_shards = sum(is_shard_path(f.path_in_repo) for f in tree.files)
    k = len(tree.sources)
    title = opts.message or (
        f"arcforge {__version__}: {n_shards} shard{'s' * (n_shards != 1)} from {k} source{'s' * (k != 1)}"
    )
    present = set(tree.sources)
    lines = [f"- {s.name}: {s.pinned} ({s.license})" for s in prov.sources if s.name in present]
    return title, "Built by arcforge " + prov.arcforge_version + " from:\n" + "\n".join(lines)


# --- the Hub ------------------------------------------------------------------------------------------------
def hub_timeout() -> float:
    """Seconds a Hub request may wait for the network (``$ARCFORGE_HUB_TIMEOUT``, default 60)."""
    raw = os.environ.get(HUB_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_HUB_TIMEOUT
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise PublishError(f"{HUB_TIMEOUT_ENV}={raw!r} is not a positive number of seconds")
    return value


_installed_timeout: float | None = None


def install_timeouts() -> float:
    """Make huggingface_hub's shared HTTP client time out after ``hub_timeout()`` seconds (idempotent)."""
    global _installed_timeout
    seconds = hub_timeout()
    if _installed_timeout != seconds:

        def factory():
            client = (
                default_client_factory() if default_client_factory else _httpx.Client(follow_redirects=True)
            )
            client.timeout = _httpx.Timeout(seconds)
            return client

        set_client_factory(factory)
        _installed_timeout = seconds
    return seconds


def _status(e: HfHubHTTPError) -> int | None:
    resp = getattr(e, "response", None)
    return getattr(resp, "status_code", None)


@contextlib.contextmanager
def hub_errors(opts: PublishOptions, stage: str) -> Iterator[None]:
    """Turn huggingface_hub errors into ``PublishError`` saying what to do. ``stage`` names the call."""
    try:
        yield
    except _HUB_ERRORS as e:
        raise _publish_error(e, opts, stage) from None


def _publish_error(e: BaseException, opts: PublishOptions, stage: str) -> PublishError:
    """The ``PublishError`` for an error of ``_HUB_ERRORS`` (the first kind it is an instance of)."""
    make = next(make for kinds, make in _ERROR_KINDS if isinstance(e, kinds))
    return make(e, opts, stage)


def _repo_error(e: BaseException, opts: PublishOptions, stage: str) -> PublishError:
    """The repo is gated, disabled or not found, or the branch is not."""
    if isinstance(e, GatedRepoError):
        return PublishError(
            f"{opts.repo_id}: the dataset repo is gated for your account ({stage})",
            hint="request access on the Hub, or publish to a repo you own",
        )
    if isinstance(e, RevisionNotFoundError):
        return PublishError(
            f"{opts.repo_id}@{opts.branch}: branch {opts.branch!r} not found ({stage})",
            hint="create the branch first (publish without --create-pr creates it), "
            "or pick an existing --revision",
        )
    if isinstance(e, RepositoryNotFoundError):
        return PublishError(
            f"{opts.repo_id}: dataset repo not found, or not visible with your token ({stage})",
            hint="check --repo-id (ORG/NAME, a dataset repo), and that your token can see it "
            "(`hf auth whoami`)",
        )
    return PublishError(f"{opts.repo_id}: the dataset repo is disabled on the Hub ({stage})")


def _http_error(e: BaseException, opts: PublishOptions, stage: str) -> PublishError:
    """Another HTTP error status: the token, write access, a concurrent commit, a tag that exists."""
    status = _status(e)  # type: ignore[arg-type]
    detail = f" ({e.server_message})" if getattr(e, "server_message", None) else ""
    if status == 401:
        return PublishError(f"the Hub rejected your token ({stage}){detail}", hint=LOGIN_HINT)
    if status == 403:
        return PublishError(
            f"{opts.repo_id}: no write access ({stage}){detail}",
            hint="use a token with write access to the org, or open a pull request with --create-pr",
        )
    if stage == "create_commit" and status in (409, 412):
        return PublishError(
            f"{opts.repo_id}@{opts.branch}: someone committed to the repo since it was read; "
            f"nothing was changed{detail}",
            hint="re-run `arcforge publish` (it re-reads the head and recomputes the deletions)",
        )
    if stage == "create_tag" and status == 409:
        return PublishError(
            f"{opts.repo_id}: tag {opts.tag!r} already exists; the commit itself was made{detail}",
            hint="choose a new --tag VERSION",
        )
    return PublishError(
        f"{opts.repo_id}: the Hub answered HTTP {status} to {stage}{detail}",
        hint="retry later; set ARCFORGE_DEBUG=1 to see the full error",
    )


def _network_error(e: BaseException, opts: PublishOptions, stage: str) -> PublishError:
    """No answer in time (per read, or for the whole call), or no connection."""
    if isinstance(e, TimeoutException):
        return PublishError(
            f"the Hub did not answer within {_installed_timeout or DEFAULT_HUB_TIMEOUT:g} s "
            f"({stage}: {type(e).__name__}); nothing more was sent",
            hint=f"retry later, or allow more time with {HUB_TIMEOUT_ENV}=SECONDS",
        )
    if isinstance(e, CallDeadline):
        return PublishError(
            f"the Hub did not complete {stage} within {e.seconds:g} s "
            f"({CALL_DEADLINE_FACTOR} x {HUB_TIMEOUT_ENV}); nothing more was sent",
            hint=f"retry later, or allow more time with {HUB_TIMEOUT_ENV}=SECONDS",
        )
    return PublishError(
        f"cannot reach the Hub ({stage}): {type(e).__name__}",
        hint="check the network (and that HF_HUB_OFFLINE is not set); nothing was committed",
    )


def _answer_error(e: BaseException, opts: PublishOptions, stage: str) -> PublishError:
    """An answer of the wrong shape; a ``ValueError`` from ``create_commit`` is the card's YAML refused."""
    if isinstance(e, ValueError) and stage == "create_commit" and not isinstance(e, json.JSONDecodeError):
        return PublishError(
            f"{opts.repo_id}: {stage} refused: {e}", hint="rebuild the dataset card (README.md)"
        )
    return odd_answer(stage, e)


# (kinds, the error for them), in the order they are told apart: the first that matches decides
_ERROR_KINDS: tuple[tuple[tuple[type[BaseException], ...], Callable[..., PublishError]], ...] = (
    ((GatedRepoError, RevisionNotFoundError, RepositoryNotFoundError, DisabledRepoError), _repo_error),
    ((HfHubHTTPError,), _http_error),
    ((TimeoutException, CallDeadline, TransportError, OfflineModeIsEnabled), _network_error),
    ((ValueError, *ODD_ANSWER), _answer_error),
)
_HUB_ERRORS = tuple(kind for kinds, _ in _ERROR_KINDS for kind in kinds)


def odd_answer(stage: str, e: BaseException) -> PublishError:
    """The error for an answer of the wrong shape: names the agent-harness cache when it is the cause."""
    cache = harness_cache_problem()
    if cache is not None:
        return cache
    return PublishError(
        f"the Hub's answer to {stage} is not what it should be ({type(e).__name__}: {e}); "
        "nothing more was sent",
        hint=ODD_HINT,
    )


def _call(opts: PublishOptions, stage: str, fn: Callable[[], T]) -> T:
    with hub_errors(opts, stage):
        return bounded(fn, CALL_DEADLINE_FACTOR * hub_timeout())


def _token() -> str:
    try:
        token = get_token()
    except Exception as e:  # an OIDC exchange that failed: say so, without details that may carry secrets
        raise PublishError(f"could not obtain a Hub token: {type(e).__name__}", hint=LOGIN_HINT) from None
    if not token:
        raise PublishError("not logged in to the Hugging Face Hub", hint=LOGIN_HINT)
    register_secret(token)  # a stored login has no $HF_TOKEN for redact() to know it by
    return token


def publish(
    out: Path, opts: PublishOptions, *, api: HfApi | None = None, progress: Progress | None = None
) -> PublishResult:
    """Publish the built folder ``out`` to ``opts.repo_id`` in one commit (see the module docstring)."""
    tree, prov = prepare(out, opts, progress=progress)
    api = _client(api)
    parent = _open_repo(api, opts)
    ops = plan_operations(tree, _remote_files(api, opts, parent))
    title, description = commit_message(tree, prov, opts)
    commit = _commit(api, opts, ops, parent, (title, description))
    if opts.tag:
        _call(
            opts,
            "create_tag",
            lambda: api.create_tag(
                opts.repo_id, tag=opts.tag, tag_message=title, revision=commit.oid, repo_type=REPO_TYPE
            ),
        )
    return PublishResult(
        opts.repo_id,
        opts.branch,
        ops,
        "publish",
        deletions_known=True,
        skipped=list(tree.skipped),
        parent_commit=parent,
        commit_oid=commit.oid,
        commit_url=getattr(commit, "commit_url", None),
        pr_url=getattr(commit, "pr_url", None),
        tag=opts.tag,
    )


def _client(api: HfApi | None) -> HfApi:
    """The Hub client (``api``, else one with the user's token), with the timeouts installed; refuses to go
    on when the agent-harness cache is in the way."""
    token = _token()
    install_timeouts()
    api = api if api is not None else HfApi(token=token)
    if (problem := harness_cache_problem()) is not None:
        raise problem
    return api


def _open_repo(api: HfApi, opts: PublishOptions) -> str:
    """Create the repo and the branch unless they exist (not for a pull request); the branch's head commit.
    Refuses ``--private`` for a repo that exists and is public."""
    branch, seconds = opts.branch, hub_timeout()
    if not opts.create_pr:
        _call(
            opts,
            "create_repo",
            lambda: api.create_repo(opts.repo_id, repo_type=REPO_TYPE, private=opts.private, exist_ok=True),
        )
        if branch != DEFAULT_REVISION:
            _call(
                opts,
                "create_branch",
                lambda: api.create_branch(opts.repo_id, branch=branch, repo_type=REPO_TYPE, exist_ok=True),
            )
    info = _call(
        opts,
        "repo_info",
        lambda: api.repo_info(opts.repo_id, repo_type=REPO_TYPE, revision=branch, timeout=seconds),
    )
    parent, private = _head(info, opts)
    if opts.private and private is False:
        raise PublishError(
            f"{opts.repo_id}: --private was asked but the repo already exists and is public",
            hint="make it private in the repo settings on the Hub first, or drop --private",
        )
    return parent


def _remote_files(api: HfApi, opts: PublishOptions, parent: str) -> list[str]:
    """The paths in the repo at commit ``parent``."""
    remote = _call(
        opts,
        "list_repo_files",
        lambda: api.list_repo_files(opts.repo_id, repo_type=REPO_TYPE, revision=parent),
    )
    if not isinstance(remote, list) or not all(isinstance(f, str) for f in remote):
        raise odd_answer("list_repo_files", TypeError(f"a {type(remote).__name__}, not a list of paths"))
    return remote


def _commit(
    api: HfApi, opts: PublishOptions, ops: list[Operation], parent: str, message: tuple[str, str]
) -> Any:
    """Make the one commit (or pull request) of ``ops`` on top of ``parent``; the Hub's answer, which
    carries the new commit id (``oid``)."""
    hub_ops = [
        CommitOperationAdd(path_in_repo=op.path_in_repo, path_or_fileobj=str(op.local_path))
        if op.kind == "add"
        else CommitOperationDelete(path_in_repo=op.path_in_repo)
        for op in ops
    ]
    with hub_errors(opts, "create_commit"):
        commit = api.create_commit(
            opts.repo_id,
            operations=hub_ops,
            commit_message=message[0],
            commit_description=message[1],
            repo_type=REPO_TYPE,
            revision=opts.branch,
            create_pr=opts.create_pr,
            parent_commit=parent,
        )
    oid = getattr(commit, "oid", None)
    if not isinstance(oid, str) or not oid:
        raise odd_answer("create_commit", TypeError("no commit id in the answer"))
    return commit


def _head(info: object, opts: PublishOptions) -> tuple[str, bool | None]:
    """(head commit, private) from ``repo_info``'s answer, refusing one without a commit id."""
    sha, private = getattr(info, "sha", None), getattr(info, "private", None)
    if not isinstance(sha, str) or not _SHA_RE.match(sha):
        raise odd_answer(
            "repo_info", ValueError(f"no head commit id for {opts.repo_id}@{opts.branch} (got {sha!r:.60})")
        )
    return sha, private if isinstance(private, bool) else None


# --- reading back -------------------------------------------------------------------------------------------
def download_dataset(
    repo_id: str, revision: str | None = None, *, cache_dir: Path | None = None, endpoint: str | None = None
) -> Path:
    """``snapshot_download`` a dataset repo into the HF cache (``HF_HOME``/``HF_HUB_CACHE``); returns the
    snapshot folder. Works offline when the snapshot is cached (``HF_HUB_OFFLINE=1``)."""
    where = f"{repo_id}@{revision or DEFAULT_REVISION}"
    stall = CALL_DEADLINE_FACTOR * install_timeouts()
    if (problem := harness_cache_problem()) is not None:
        raise FetchError(problem.message, hint=problem.hint)
    try:
        path = watched(
            lambda: snapshot_download(
                repo_id,
                repo_type=REPO_TYPE,
                revision=revision,
                cache_dir=str(cache_dir) if cache_dir else None,
                endpoint=endpoint,
            ),
            _repo_cache(repo_id, cache_dir),
            stall,
        )
    except _DOWNLOAD_ERRORS as e:
        raise _download_error(e, repo_id, where) from None
    if not isinstance(path, str | os.PathLike) or not Path(path).is_dir():
        raise FetchError(f"{where}: the Hub's answer gave no snapshot folder", hint=ODD_HINT)
    return Path(path)


_DOWNLOAD_ERRORS = (
    CallDeadline,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    LocalEntryNotFoundError,
    HfHubHTTPError,
    TimeoutException,
    TransportError,
    OfflineModeIsEnabled,
    *ODD_ANSWER,
)


def _download_error(e: BaseException, repo_id: str, where: str) -> FetchError:
    """The error for a ``snapshot_download`` that failed with one of ``_DOWNLOAD_ERRORS`` (told apart in
    that order): nothing sent in time, no such repo or revision, offline without a cached copy, an HTTP
    error, no connection, or an answer of the wrong shape."""
    if isinstance(e, CallDeadline):
        return FetchError(
            f"{where}: the Hub sent nothing for {e.seconds:g} s ({CALL_DEADLINE_FACTOR} x "
            f"{HUB_TIMEOUT_ENV}); the download was given up",
            hint=f"retry later, or allow more time with {HUB_TIMEOUT_ENV}=SECONDS",
        )
    if isinstance(e, GatedRepoError | RepositoryNotFoundError):
        return FetchError(
            f"{repo_id}: dataset repo not found on the Hub, or not visible with your token",
            hint="check the name (ORG/NAME); for a private repo set HF_TOKEN or run `hf auth login`",
        )
    if isinstance(e, RevisionNotFoundError):
        return FetchError(f"{where}: revision not found", hint="check the @revision (branch, tag or commit)")
    if isinstance(e, LocalEntryNotFoundError):
        return SourceUnavailableError(
            f"{where}: not in the local Hugging Face cache and the Hub cannot be reached",
            hint="connect to the network once (and unset HF_HUB_OFFLINE) to download it",
        )
    if isinstance(e, HfHubHTTPError):
        return FetchError(f"{where}: the Hub answered HTTP {_status(e)}", hint="retry later")
    if isinstance(e, TimeoutException):
        return FetchError(
            f"{where}: the Hub did not answer in time ({type(e).__name__})",
            hint=f"retry later, or allow more time with {HUB_TIMEOUT_ENV}=SECONDS",
        )
    if isinstance(e, TransportError | OfflineModeIsEnabled):
        return SourceUnavailableError(
            f"{where}: cannot reach the Hub ({type(e).__name__})", hint="check the network"
        )
    cache = harness_cache_problem()
    if cache is not None:
        return FetchError(cache.message, hint=cache.hint)
    return FetchError(
        f"{where}: the Hub's answer is not what it should be ({type(e).__name__}: {e})", hint=ODD_HINT
    )


def _repo_cache(repo_id: str, cache_dir: Path | None) -> Path:
    """The folder huggingface_hub downloads ``repo_id`` into (``datasets--ORG--NAME`` in the hub cache)."""
    from huggingface_hub import constants

    root = Path(cache_dir) if cache_dir else Path(constants.HF_HUB_CACHE)
    return root / ("datasets--" + repo_id.replace("/", "--"))
