"""The catalogue of upstream *programs*: the transformation functions of program-backed sources.

A program maps an input grid to an output grid. Upstream ships them beside its generators:

- RE-ARC (``michaelhodel/re-arc``): ``verify_<key>`` in ``verifiers.py`` (over ``dsl.py``), one per
  ARC-AGI-1 training task ``<key>``; grids are tuples of tuples.
- BARC (``xu3kev/BARC``): ``main`` of each seed ``seeds/<arc id>[_suffix].py`` (over ``seeds/common.py``),
  and ``main`` of the program beside each ``synthetic_problems/**/<uid>.json``; grids are numpy arrays
  indexed ``[x][y]``, the transpose of ARC's rows (upstream transposes every grid it hands them).

The catalogue only *reads* the upstream files (``ast``, no import): programs run in the sandbox
(``arcforge.sources.sandbox``), never in arcforge's process. Each program has a content digest: its own
source text plus every upstream file it imports, so a cached result is reused only for the same code.

Reading the catalogue parses every program file; with ``cache`` (a folder) the list is kept there under a
digest of the path, size and modification time of every file the catalogue reads or scans, so a rebuild of
the same checkout parses none.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from arcforge.errors import BuildError

CATALOGUE_VERSION = 1  # part of the catalogue cache's key: a change to how programs are described

ARC_ID = re.compile(r"^[0-9a-f]{8}$")
SEED_NAME = re.compile(r"^(?P<id>[0-9a-f]{8})(?:_[A-Za-z0-9]+)?$")
UID_NAME = re.compile(r"^[0-9a-f]{16}$")
BARC_PRELOAD = ("scipy.ndimage",)  # seeds/common.py imports it inside functions: a first call would pay it


@dataclass(frozen=True)
class Program:
    """One upstream transformation function and where it comes from."""

    source: str  # the manifest whose tasks the program's generator makes (``re_arc``, ``barc``)
    family: str  # ``re_arc.verifiers``, ``barc.seeds``, ``barc.synthetic``
    key: str  # the generator key: ``007bbfb7``, ``25d487eb_Kevin``, a BARC uid
    path: str  # upstream file and function: ``verifiers.py:verify_007bbfb7``, ``seeds/007bbfb7.py:main``
    module_dir: str  # folder (relative to the checkout) the module is imported from
    module: str
    function: str
    grid_type: str  # how the sandbox hands it a grid: ``tuple`` (RE-ARC) or ``numpy`` (BARC)
    derived_from: tuple[str, ...]  # declared lineage: ``arc_agi_1/training/007bbfb7``; empty if unknown
    digest: str  # sha256 of its source text and the upstream files it imports
    stubs: tuple[tuple[str, str], ...] = ()  # (module, upstream file) it imports from outside its folder
    transpose: bool = False  # its grids are indexed [x][y] (BARC): inputs and outputs are transposed
    preload: tuple[str, ...] = ()  # modules it imports lazily, imported when its worker starts
    made_from: str = ""  # the upstream file of the task it made; empty: the tasks its generator makes


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _read(code_dir: Path, rel: str) -> bytes:
    f = code_dir / rel
    try:
        return f.read_bytes()
    except OSError as e:
        raise BuildError(f"{f}: cannot read the upstream program file ({e.strerror or e})") from None


def _tree(code_dir: Path, rel: str, data: bytes) -> ast.Module:
    try:
        return ast.parse(data, filename=rel)
    except (SyntaxError, ValueError) as e:
        raise BuildError(f"{code_dir / rel}: not valid Python ({e})") from None


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _segment(lines: list[bytes], node: ast.stmt) -> bytes:
    """The node's source text, as ``ast.get_source_segment`` gives it (which re-splits the file per call)."""
    end = node.end_lineno or node.lineno
    if end == node.lineno:
        return lines[node.lineno - 1][node.col_offset : node.end_col_offset]
    return b"".join(
        [
            lines[node.lineno - 1][node.col_offset :],
            *lines[node.lineno : end - 1],
            lines[end - 1][: node.end_col_offset],
        ]
    )


def re_arc_verifiers(code_dir: Path, source: str = "re_arc") -> list[Program]:
    """RE-ARC's ``verify_<key>`` functions; each digest covers its own text and ``dsl.py``."""
    data = _read(code_dir, "verifiers.py")
    dsl = _read(code_dir, "dsl.py")
    lines = data.splitlines(keepends=True)
    out = []
    for name, node in sorted(_functions(_tree(code_dir, "verifiers.py", data)).items()):
        key = name.removeprefix("verify_")
        if not name.startswith("verify_") or not ARC_ID.match(key):
            continue
        segment = _segment(lines, node)
        out.append(
            Program(
                source,
                "re_arc.verifiers",
                key,
                f"verifiers.py:{name}",
                ".",
                "verifiers",
                name,
                "tuple",
                (f"arc_agi_1/training/{key}",),
                _sha(segment, dsl),
            )
        )
    return out


def _barc_mains(
    code_dir: Path,
    folder: str,
    family: str,
    source: str,
    name_ok: Callable[[Path], bool],
    lineage: Callable[[str], tuple[str, ...]],
) -> list[Program]:
    """``main`` of every ``.py`` under ``folder`` that ``name_ok`` accepts; all import ``seeds/common.py``."""
    common = _read(code_dir, "seeds/common.py")
    base = code_dir / folder
    if not base.is_dir():
        raise BuildError(f"{base}: the upstream program folder is missing")
    out = []
    for f in sorted(base.rglob("*.py")):
        if not name_ok(f):
            continue
        rel = f.relative_to(code_dir).as_posix()
        data = _read(code_dir, rel)
        if "main" not in _functions(_tree(code_dir, rel, data)):
            continue
        where = f.parent.relative_to(code_dir).as_posix()
        seed = where == "seeds"
        out.append(
            Program(
                source,
                family,
                f.stem,
                f"{rel}:main",
                where,
                f.stem,
                "main",
                "numpy",
                lineage(f.stem),
                _sha(data, common),
                () if seed else (("common", "seeds/common.py"),),
                transpose=True,
                preload=BARC_PRELOAD,
                made_from="" if seed else f.with_suffix(".json").relative_to(code_dir).as_posix(),
            )
        )
    return out


def barc_seeds(code_dir: Path, source: str = "barc") -> list[Program]:
    """BARC's seeds: ``main`` of ``seeds/<arc id>[_suffix].py``, declared from training task ``<arc id>``."""

    def lineage(stem: str) -> tuple[str, ...]:
        m = SEED_NAME.match(stem)
        return (f"arc_agi_1/training/{m['id']}",) if m else ()

    return _barc_mains(
        code_dir,
        "seeds",
        "barc.seeds",
        source,
        lambda f: f.parent.name == "seeds" and bool(SEED_NAME.match(f.stem)),
        lineage,
    )


def barc_synthetic(code_dir: Path, source: str = "barc") -> list[Program]:
    """The programs beside BARC's ``synthetic_problems/**/<uid>.json`` (no declared lineage)."""
    return _barc_mains(
        code_dir,
        "synthetic_problems",
        "barc.synthetic",
        source,
        lambda f: bool(UID_NAME.match(f.stem)) and f.with_suffix(".json").is_file(),
        lambda stem: (),
    )


# upstream repository -> its program families, the files each needs and the files and folders it reads
# (a new kind of program = one line)
Family = tuple[Callable[..., list[Program]], tuple[str, ...], tuple[str, ...]]
CATALOGUES: dict[str, tuple[Family, ...]] = {
    "michaelhodel/re-arc": ((re_arc_verifiers, ("verifiers.py", "dsl.py"), ("verifiers.py", "dsl.py")),),
    "xu3kev/BARC": (
        (barc_seeds, ("seeds/common.py",), ("seeds",)),
        (
            barc_synthetic,
            ("seeds/common.py", "synthetic_problems"),
            ("seeds/common.py", "synthetic_problems"),
        ),
    ),
}


def catalogue(repo: str, code_dir: Path, source: str, cache: Path | None = None) -> list[Program]:
    """The programs that the checkout of ``repo`` in ``code_dir`` ships. A family whose files the checkout
    does not hold (a source that reads only upstream's data files) has none. ``cache``: see the module
    docstring."""
    code_dir = Path(code_dir)
    families = [f for f in CATALOGUES.get(repo, ()) if all((code_dir / n).exists() for n in f[1])]
    if not families:
        return []
    if cache is None:
        return [p for fam, _, _ in families for p in fam(code_dir, source)]
    key = _content_key(repo, source, code_dir, families)
    f = Path(cache) / f"{key}.json"
    try:
        return [_program(d) for d in msgspec.json.decode(f.read_bytes())]
    except (OSError, msgspec.DecodeError, TypeError, ValueError):
        pass  # missing or damaged: read the checkout again
    progs = [p for fam, _, _ in families for p in fam(code_dir, source)]
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f"{f.name}.{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.encode([dataclasses.asdict(p) for p in progs]))
    os.replace(tmp, f)
    return progs


def _content_key(repo: str, source: str, code_dir: Path, families: list[Family]) -> str:
    """sha256 over every file the families read: its path, size and modification time (a checkout is
    replaced, never edited, by ``arcforge fetch``; programs run only after it is checked against its pin)."""
    h = hashlib.sha256(
        msgspec.json.encode([CATALOGUE_VERSION, repo, source, [f[0].__name__ for f in families]])
    )
    seen: set[str] = set()
    for _, _, reads in families:
        for rel in reads:
            for path, st in _walk(os.path.join(code_dir, rel)):
                if path not in seen:
                    seen.add(path)
                    h.update(f"{os.path.relpath(path, code_dir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _walk(path: str) -> list[tuple[str, os.stat_result]]:
    """``(path, stat)`` of ``path`` (a file) or of every file under it, sorted; nothing if it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    if not os.path.isdir(path):
        return [(path, st)]
    out = []
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            out += _walk(e.path)
        elif e.is_file():
            out.append((e.path, e.stat()))
    return out


def _program(d: dict) -> Program:
    d = dict(d)
    for k in ("derived_from", "preload"):
        d[k] = tuple(d[k])
    d["stubs"] = tuple(tuple(s) for s in d["stubs"])
    return Program(**d)
