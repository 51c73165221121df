"""Source manifests: one TOML file per upstream repository, validated on load.

A manifest says where a dataset lives (GitHub owner/repo at a full commit), what it is (license,
homepage, citation), which files ``fetch`` keeps, and how ``build`` turns those files into tasks:
``[[tasks]]`` entries map globs to a split and a format plug-in. A glob may reach into a zip archive
with ``archive.zip!inner/glob``; ``*`` stays inside one path segment, ``**`` spans segments.

Example (manifests/arc_agi_1.toml)::

    name = "arc_agi_1"
    title = "ARC-AGI-1"
    repo = "fchollet/ARC-AGI"
    commit = "399030444e0ab0cc8b4e199870fb20b863846f34"
    license = "Apache-2.0"
    homepage = "https://github.com/fchollet/ARC-AGI"
    citation = "..."
    format = "standard"
    role = "eval"                   # its evaluation split is a decontamination reference
    files = ["data/training/*.json", "data/evaluation/*.json", "LICENSE", "README.md"]
    id_root = "data"                # ids: arc_agi_1/<path relative to id_root, no extension>

    [[tasks]]
    split = "training"
    include = ["data/training/*.json"]

    [[tasks]]
    split = "evaluation"
    include = ["data/evaluation/*.json"]

``kind`` names a source kind plug-in (``arcforge.sources.kinds``; default ``repo``); a kind's own settings
are the table named after it, e.g. ``[generator]`` (``arcforge.sources.generator_kind``).

A ``hub`` source may name a branch or tag instead of a commit: ``revision = "main"`` and no ``commit``
(exactly one of the two). Its first fetch from the Hub resolves the revision to a full commit id and locks
it in ``$ARCFORGE_HOME/digests.lock`` with the files' sha256; every later fetch and build uses that locked
commit (``arcforge.sources.lock.locked``) until ``arcforge fetch --update NAME`` moves it. Until then
``Manifest.commit`` is ``""``.

``cache_key`` (optional) gives a source its own cache folder ``<commit>-<cache_key>`` when several
manifests keep different files of one repository at one commit (the sources of neoneye's collection).

Pinned content digests live in ``manifests/digests.lock`` (written by ``fetch``), not in the manifests.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arcforge.errors import ManifestError
from arcforge.paths import HUB_KIND
from arcforge.sources import kinds
from arcforge.sources.kinds import DEFAULT_KIND


def _bundled_manifest_dir() -> Path:
    # In a source checkout/editable install: <repo>/manifests. In a wheel: arcforge/_manifests.
    here = Path(__file__).resolve().parent.parent  # the arcforge package
    for cand in (here / "_manifests", here.parent / "manifests"):
        if cand.is_dir():
            return cand
    return here.parent / "manifests"


MANIFEST_DIR = _bundled_manifest_dir()

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")  # config-safe: also a valid `datasets` config name
SPLIT_RE = re.compile(r"^\w+(\.\w+)*$")  # what `datasets` accepts as a split name
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# a branch or tag name (git's rules, roughly): no "..", no leading "/" or "-", no control or special char
REVISION_RE = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}(?<![/.])$")
# owner/name as GitHub and the Hub spell them; neither part may be "." or "..": the parts name folders
# (the cache, a mirror) and must stay inside them
REPO_RE = re.compile(r"^(?!\.+/)[A-Za-z0-9_.-]+/(?!\.+$)[A-Za-z0-9_.-]+$")
# SPDX-looking ids (Apache-2.0, MIT, CC-BY-4.0, GPL-3.0-or-later, ...) or the literal "unknown".
LICENSE_RE = re.compile(r"^(unknown|[A-Za-z0-9][A-Za-z0-9.+-]*)$")
ROLES = ("train", "eval")
EVAL_SPLIT = "evaluation"


@dataclass(frozen=True)
class TaskGlob:
    """Files that become tasks of one split, read by one format plug-in."""

    split: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    format: str = ""  # empty: the source's format
    id_root: str | None = None  # None: the source's id_root
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    repo: str  # "owner/name"
    commit: str  # full 40-hex id; "" for a source pinned by `revision` whose commit is not locked yet
    license: str
    homepage: str
    citation: str
    format: str
    role: str
    files: tuple[str, ...]
    tasks: tuple[TaskGlob, ...]
    id_root: str = ""
    eval_splits: tuple[str, ...] = ()
    description: str = ""
    path: Path | None = None  # the manifest file it came from
    kind: str = DEFAULT_KIND  # a source kind plug-in (arcforge.sources.kinds): repo, generator, ...
    settings: dict[str, Any] = field(default_factory=dict)  # the kind's own table, checked by the kind
    cache_key: str = ""  # set when several sources keep different files of one repo@commit: own cache folder
    revision: str = ""  # a branch or tag (hub sources), resolved and locked on first fetch; "" when pinned

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]

    @property
    def repo_name(self) -> str:
        return self.repo.split("/", 1)[1]

    @property
    def short_commit(self) -> str:
        return self.commit[:7]

    @property
    def splits(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for t in self.tasks:
            seen.setdefault(t.split, None)
        return tuple(seen)

    @property
    def is_eval(self) -> bool:
        return self.role == "eval"


# --- globbing -------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: ``**`` any number of segments, ``*``/``?`` within one segment, ``[..]`` sets."""
    i, out = 0, []
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def glob_match(path: str, pattern: str) -> bool:
    return glob_regex(pattern).match(path) is not None


def split_archive_glob(pattern: str) -> tuple[str, str | None]:
    """``"a.zip!x/*.json"`` -> ``("a.zip", "x/*.json")``; a plain glob -> ``(glob, None)``."""
    if "!" in pattern:
        outer, inner = pattern.split("!", 1)
        return outer, inner
    return pattern, None


def matches_any(path: str, patterns: Iterable[str]) -> bool:
    return any(glob_match(path, p) for p in patterns)


# --- loading ----------------------------------------------------------------------------------------------
def _field(data: dict[str, Any], key: str, where: Path, kind: type, required: bool = True) -> Any:
    if key not in data:
        if required:
            raise ManifestError(f"{where}: missing required field '{key}'")
        return None
    value = data[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{where}: field '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _str_list(data: dict[str, Any], key: str, where: Path, required: bool = True) -> tuple[str, ...]:
    value = _field(data, key, where, list, required)
    if value is None:
        return ()
    if not all(isinstance(v, str) and v for v in value):
        raise ManifestError(f"{where}: field '{key}' must be a list of non-empty strings")
    return tuple(value)


def _check_path(value: str, key: str, where: Path) -> str:
    """A path or glob inside the source's tree: relative, no ``..`` segment, no control character."""
    parts = value.replace("!", "/").split("/")
    if (
        value.startswith(("/", "\\"))
        or "\\" in value
        or ".." in parts
        or re.search(r"[\x00-\x1f\x7f]", value)
        or (len(value) > 1 and value[1] == ":")
    ):
        raise ManifestError(
            f"{where}: field '{key}' = {value!r} must be a relative path inside the source "
            "(no leading '/', no '..', no backslash or control character)"
        )
    return value


def _check_paths(values: tuple[str, ...], key: str, where: Path) -> tuple[str, ...]:
    for v in values:
        _check_path(v, key, where)
    return values


def parse_manifest(data: dict[str, Any], where: Path, known_formats: Iterable[str] | None = None) -> Manifest:
    """Validate a manifest dict. ``where`` names the file in every error."""
    name, repo, lic = _identity(data, where)
    kind = _field(data, "kind", where, str, required=False) or DEFAULT_KIND
    commit, revision = _pin(data, where, kind)
    fmt = _field(data, "format", where, str)
    known = sorted(known_formats) if known_formats is not None else None
    role = _role(data, where)
    id_root = _check_path(
        (_field(data, "id_root", where, str, required=False) or "").strip("/"), "id_root", where
    )
    tasks = _task_globs(data, where, fmt, known)
    eval_splits = _eval_splits(data, where, role, tasks)
    files = _check_paths(_str_list(data, "files", where), "files", where)
    cache_key = _cache_key(data, where)
    settings = _kind_settings(data, where, kind, files)
    return Manifest(
        name=name,
        title=data.get("title", name),
        repo=repo,
        commit=commit,
        license=lic,
        homepage=data.get("homepage", f"https://github.com/{repo}"),
        citation=data.get("citation", "").strip(),
        format=fmt,
        role=role,
        files=files,
        tasks=tasks,
        id_root=id_root,
        eval_splits=eval_splits,
        description=data.get("description", "").strip(),
        path=where,
        kind=kind,
        settings=settings,
        cache_key=cache_key,
        revision=revision,
    )


def _identity(data: dict[str, Any], where: Path) -> tuple[str, str, str]:
    """The source's name, ``owner/name`` repo and license, each checked."""
    name = _field(data, "name", where, str)
    if not NAME_RE.match(name):
        raise ManifestError(
            f"{where}: field 'name' = {name!r} is not config-safe (lowercase letters, digits, '_')"
        )
    repo = _field(data, "repo", where, str)
    if not REPO_RE.match(repo):
        raise ManifestError(f"{where}: field 'repo' = {repo!r} is not 'owner/name'")
    lic = _field(data, "license", where, str)
    if not lic or not LICENSE_RE.match(lic):
        raise ManifestError(f"{where}: field 'license' must be an SPDX id or 'unknown', got {lic!r}")
    return name, repo, lic


def _pin(data: dict[str, Any], where: Path, kind: str) -> tuple[str, str]:
    """``(commit, revision)``: a full commit id, or (``hub`` kind) a branch or tag locked on first fetch."""
    has_commit, has_revision = "commit" in data, "revision" in data
    if has_revision and kind != HUB_KIND:
        raise ManifestError(
            f"{where}: field 'revision' is only for hub sources; a {kind} source names its 'commit'"
        )
    if has_commit and has_revision:
        raise ManifestError(
            f"{where}: give either 'commit' (a full 40-hex id) or 'revision' (a branch or tag, locked on "
            "first fetch), not both"
        )
    if kind == HUB_KIND and not has_commit and not has_revision:
        raise ManifestError(
            f"{where}: missing 'commit' (a full 40-hex id) or 'revision' (a branch or tag, locked on first "
            "fetch)"
        )
    if not has_revision:
        commit = _field(data, "commit", where, str)
        if not COMMIT_RE.match(commit):
            raise ManifestError(
                f"{where}: field 'commit' = {commit!r} is not a full 40-hex commit id (lowercase)"
            )
        return commit, ""
    revision = _field(data, "revision", where, str)
    if COMMIT_RE.match(revision) or not REVISION_RE.match(revision):
        raise ManifestError(
            f"{where}: field 'revision' = {revision!r} must be a branch or tag name"
            + (" (a full commit id goes in 'commit')" if COMMIT_RE.match(revision) else "")
        )
    return "", revision


def _role(data: dict[str, Any], where: Path) -> str:
    """``role`` (default ``train``), one of ``ROLES``."""
    role = data.get("role", "train")
    if role not in ROLES:
        raise ManifestError(f"{where}: field 'role' = {role!r} must be one of {', '.join(ROLES)}")
    return role


def _task_globs(data: dict[str, Any], where: Path, fmt: str, known: list[str] | None) -> tuple[TaskGlob, ...]:
    """The ``[[tasks]]`` entries, at least one, each checked (its entry number in every error)."""
    raw_tasks = _field(data, "tasks", where, list)
    if not raw_tasks:
        raise ManifestError(f"{where}: field 'tasks' must list at least one [[tasks]] entry")
    return tuple(
        _task_glob(t, Path(f"{where} [[tasks]] #{i + 1}"), where, fmt, known) for i, t in enumerate(raw_tasks)
    )


def _task_glob(t: Any, tw: Path, where: Path, fmt: str, known: list[str] | None) -> TaskGlob:
    """One ``[[tasks]]`` entry (``tw`` names it): its split, formats (the manifest's too), options, globs."""
    if not isinstance(t, dict):
        raise ManifestError(f"{tw}: must be a table")
    split = _field(t, "split", tw, str)
    if not SPLIT_RE.match(split):
        raise ManifestError(f"{tw}: split {split!r} must match ^\\w+(\\.\\w+)*$")
    tfmt = t.get("format", "")
    for f in (fmt, tfmt):
        if f and known is not None and f not in known:
            raise ManifestError(f"{where}: unknown format {f!r}; known formats: {', '.join(known)}")
    options = t.get("options", {})
    if not isinstance(options, dict):
        raise ManifestError(f"{tw}: 'options' must be a table")
    return TaskGlob(
        split=split,
        include=_check_paths(_str_list(t, "include", tw), "include", tw),
        exclude=_check_paths(_str_list(t, "exclude", tw, required=False), "exclude", tw),
        format=tfmt,
        id_root=_check_path(t["id_root"].strip("/"), "id_root", tw)
        if isinstance(t.get("id_root"), str)
        else None,
        options=options,
    )


def _eval_splits(
    data: dict[str, Any], where: Path, role: str, tasks: tuple[TaskGlob, ...]
) -> tuple[str, ...]:
    """``eval_splits`` (an ``eval`` source without them: ``evaluation``), each a split of the manifest."""
    splits = {t.split for t in tasks}
    eval_splits = _str_list(data, "eval_splits", where, required=False)
    if role == "eval" and not eval_splits:
        eval_splits = (EVAL_SPLIT,)
    for s in eval_splits:
        if s not in splits:
            raise ManifestError(f"{where}: eval split {s!r} is not one of the manifest's splits")
    return eval_splits


def _cache_key(data: dict[str, Any], where: Path) -> str:
    """``cache_key`` (default ""): lowercase letters, digits, '_'."""
    cache_key = _field(data, "cache_key", where, str, required=False) or ""
    if cache_key and not NAME_RE.match(cache_key):
        raise ManifestError(
            f"{where}: field 'cache_key' = {cache_key!r} must be lowercase letters, digits, '_'"
        )
    return cache_key


def _kind_settings(data: dict[str, Any], where: Path, kind: str, files: tuple[str, ...]) -> dict[str, Any]:
    """The ``[kind]`` table checked by its kind; its code files must be among the manifest's ``files``."""
    settings = kinds.check_settings(kind, data, where)
    for f in settings.get("code", ()):
        if not matches_any(f, files):
            raise ManifestError(f"{where}: [{kind}] code file {f!r} is not among the manifest's 'files'")
    return settings


def load_manifest(path: Path, known_formats: Iterable[str] | None = None) -> Manifest:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest file not found") from None
    except UnicodeDecodeError as e:
        raise ManifestError(
            f"{path}: not a text (UTF-8) file, so not a TOML manifest (byte {e.start})"
        ) from None
    except OSError as e:
        raise ManifestError(f"{path}: cannot read the manifest: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: not valid TOML: {e}") from None
    if known_formats is None:
        from arcforge import formats

        known_formats = formats.names()
    return parse_manifest(data, Path(path), known_formats)


def load_manifests(directory: Path | None = None) -> dict[str, Manifest]:
    """All manifests in ``directory`` (default: the bundled ``manifests/``), by name, sorted."""
    directory = Path(directory) if directory else MANIFEST_DIR
    if not directory.is_dir():
        raise ManifestError(f"{directory}: manifest directory not found")
    out: dict[str, Manifest] = {}
    for p in sorted(directory.glob("*.toml")):
        m = load_manifest(p)
        if m.name in out:
            raise ManifestError(f"{p}: source name {m.name!r} is also used by {out[m.name].path}")
        out[m.name] = m
    return out


def select(manifests: dict[str, Manifest], names: Iterable[str]) -> list[Manifest]:
    """Pick manifests by name, with an error listing the known names for a typo."""
    chosen = []
    for n in names:
        if n not in manifests:
            raise ManifestError(f"unknown source {n!r}; known sources: {', '.join(sorted(manifests))}")
        chosen.append(manifests[n])
    return chosen
