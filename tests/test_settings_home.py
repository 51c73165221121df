"""One home per setting: every default of a training, evaluation or demo setting is written once, in
``arcforge/train/config.py``. The trainer's modules, the demo, the experiments and the benchmarks read it
from there (``EvalConfig.votes``) or override it by name (``TrainConfig(lr=2e-3)``); none writes a literal
default of its own for a parameter, a dataclass field or a command-line option named like a setting. The
choices are config's enums (no tuple of the same strings elsewhere), and config's classes are imported
from config (no re-exports). Static checks over the source (``ast``), no torch."""

from __future__ import annotations

import ast
from dataclasses import fields, is_dataclass
from enum import StrEnum
from pathlib import Path

from arcforge.train import config as C

ROOT = Path(__file__).resolve().parent.parent
HOME = "arcforge/train/config.py"
CONFIG_MODULE = "arcforge.train.config"

# Folders whose literal defaults are not checked (none: the CLI reads every default from its concern's home).
EXEMPT_FOLDERS: tuple[str, ...] = ()

# A name that means another setting in one place (not a copy of config's), with what it is there.
OTHER_SETTING = {
    ("arcforge/demo/run.py", "eval_tasks"): "held-out tasks the demo scores (config's: per in-training eval)",
    ("arcforge/train/device.py", "window"): "seconds over which busy CPUs are sampled",
    ("arcforge/train/decode.py", "amp"): "whether bf16 runs, decided from EvalConfig.amp by the caller",
    ("arcforge/train/decode.py", "steps"): "tokens decoded so far (a counter of the decoding loop)",
    ("benchmarks/gpu_check.py", "eval_tasks"): "smallest ARC-AGI-1 evaluation tasks scored after training",
}
# The experiments reproduce papers with models and loops of their own: each study's settings live in its
# study class (its command-line options and functions read them there), not in the trainer's config.
STUDY_HOMES = {
    ("experiments/grokfast_modarith.py", "GrokRun"),
    ("experiments/grokfast_modarith.py", "GrokStudy"),
    ("experiments/rope_extension.py", "RopeStudy"),
}


def setting_names() -> set[str]:
    """Every field of config's dataclasses, and the demo's ``ttt_*`` spelling of the TTT fields."""
    names: set[str] = set()
    for obj in vars(C).values():
        if isinstance(obj, type) and is_dataclass(obj) and obj.__module__ == CONFIG_MODULE:
            names |= {f.name for f in fields(obj)}
    names |= {f"ttt_{f.name}" for f in fields(C.TTTConfig)}
    return names


def _reads_trainer(tree: ast.Module) -> bool:
    mods = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return any(m.startswith(("arcforge.train", "arcforge.demo")) for m in mods)


def scope() -> list[tuple[str, ast.Module]]:
    """The trainer, the demo and the CLI, and the experiments and benchmarks that train or score a model
    (the data side's benchmarks have settings of their own: the build's)."""
    out = []
    for folder in ("arcforge/train", "arcforge/demo", "arcforge/cli", "experiments", "benchmarks"):
        for path in sorted((ROOT / folder).glob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(), filename=rel)
            if rel != HOME and (folder.startswith("arcforge") or _reads_trainer(tree)):
                out.append((rel, tree))
    return out


def _literal(node: ast.expr | None) -> bool:
    """A value written out (``0``, ``"cpu"``, ``(1, 2)``, ``-1.5``); ``None`` ("not given") is not one."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return False
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def _defaults(tree: ast.Module):
    """(class or "", name, default node) of every parameter default, class field and argparse ``default=``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            a = node.args
            pos = a.posonlyargs + a.args
            with_default = pos[len(pos) - len(a.defaults) :]
            yield from (("", arg.arg, d) for arg, d in zip(with_default, a.defaults, strict=True))
            yield from (
                ("", arg.arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None
            )
        elif isinstance(node, ast.ClassDef):
            yield from (
                (node.name, s.target.id, s.value)
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and s.value
            )
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            opts = [
                a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")
            ]
            yield from (
                ("", opts[0][2:].replace("-", "_"), k.value)
                for k in node.keywords
                if k.arg == "default" and opts
            )


def second_homes(files: list[tuple[str, ast.Module]], exempt: tuple[str, ...] = EXEMPT_FOLDERS) -> list[str]:
    names = setting_names()
    return sorted(
        f"{rel}:{d.lineno}: {name} = {ast.unparse(d)}"
        for rel, tree in files
        if not rel.startswith(exempt)
        for owner, name, d in _defaults(tree)
        if name in names
        and (rel, name) not in OTHER_SETTING
        and (rel, owner) not in STUDY_HOMES
        and _literal(d)
    )


def test_every_setting_default_lives_in_config_only():
    found = second_homes(scope())
    assert not found, (
        "defaults written outside arcforge/train/config.py (read them from config, or "
        "override by name):\n" + "\n".join(found)
    )


def test_the_check_finds_a_second_home(tmp_path):
    """The walker sees each kind of second home (a parameter, a field, an option), not a read or None."""
    src = (
        "import argparse\nfrom dataclasses import dataclass\n"
        "from arcforge.train.config import EvalConfig\n"
        "def f(x, seed=0, *, votes=EvalConfig.votes, device='cpu', lr=None): pass\n"
        "@dataclass\nclass D:\n    seq_len: int = 384\n    threads: int = EvalConfig.threads\n"
        "argparse.ArgumentParser().add_argument('--ttt-lr', type=float, default=1e-3)\n"
    )
    found = second_homes([("benchmarks/bench_x.py", ast.parse(src))])
    assert {f.split(": ", 1)[1] for f in found} == {
        "seed = 0",
        "device = 'cpu'",
        "seq_len = 384",
        "ttt_lr = 0.001",
    }


def _enum_values() -> dict[frozenset[str], str]:
    return {
        frozenset(m.value for m in e): e.__name__
        for e in vars(C).values()
        if isinstance(e, type) and issubclass(e, StrEnum) and e is not StrEnum
    }


def test_choices_are_configs_enums():
    """No module keeps its own tuple of an enum's strings (``rope.MODES``, ``tokenize.LOSS_ON``, ...)."""
    enums = _enum_values()
    copies = []
    for rel, tree in scope():
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) > 1:
                try:
                    values = frozenset(ast.literal_eval(node))
                except (ValueError, TypeError):
                    continue
                if values in enums:
                    copies.append(
                        f"{rel}:{node.lineno}: {ast.unparse(node)}, a copy of config.{enums[values]}"
                    )
    assert not copies, "\n".join(copies)


def test_config_classes_are_imported_from_config():
    """``from arcforge.train.model import ModelConfig`` and the like re-export config's classes: every
    import of them names arcforge.train.config."""
    ours = {n for n, v in vars(C).items() if isinstance(v, type) and v.__module__ == CONFIG_MODULE}
    ours |= {"AugmentConfig"}
    bad = []
    for folder in ("arcforge", "experiments", "benchmarks", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.ImportFrom)
                    and (node.module or "").startswith("arcforge")
                    and node.module != CONFIG_MODULE
                ):
                    bad += [
                        f"{path.relative_to(ROOT)}:{node.lineno}: {a.name} from {node.module}"
                        for a in node.names
                        if a.name in ours
                    ]
    assert not bad, "\n".join(bad)
