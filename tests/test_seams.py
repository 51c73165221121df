"""The architecture's seams, asserted on every module of the package, eager and lazy imports alike.

- The core never imports the CLI, typer or rich; click is never imported (typer bundles its own).
- torch and safetensors only under arcforge/train/; huggingface_hub only under arcforge/hub/.
- Pillow (the ``png`` extra) is imported outside arcforge/train/ only inside functions; every module
  outside arcforge/train/ imports on the base install (no torch, safetensors or Pillow): the CLI may
  read the trainer's torch-free config at import, never torch.

The static part reads every module's syntax tree (an ``import`` inside a function counts); the dynamic
part imports every module, and imports the base-install modules with torch, safetensors and Pillow
made unimportable, then runs ``arcforge --help`` and ``--version`` that way.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "arcforge"
FILES = sorted(PKG.rglob("*.py"))
OPTIONAL = ("torch", "safetensors", "PIL")  # what the base install does not have


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = [module_name(p) for p in FILES if p.name != "__main__.py"]


def imports(path: Path) -> list[tuple[str, bool]]:
    """Every module ``path`` imports, absolute, with whether the import sits at module level."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    out: list[tuple[str, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                out.extend((a.name, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                out.append((base, top))
                out.extend((f"{base}.{a.name}", top) for a in child.names if base.startswith("arcforge"))
            visit(child, inner)

    visit(tree, True)
    return out


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def violations(files: list[Path] | None = None) -> list[str]:
    bad = []
    for path in FILES if files is None else files:
        where = rel(path)
        in_cli, in_train = where.startswith("arcforge/cli/"), where.startswith("arcforge/train/")
        for mod, top in imports(path):
            root = mod.split(".")[0]
            if root == "click":
                bad.append(f"{where}: imports click (import typer only)")
            if root in ("typer", "rich") and not in_cli:
                bad.append(f"{where}: imports {root} outside arcforge/cli")
            if mod.startswith("arcforge.cli") and not (in_cli or where == "arcforge/__main__.py"):
                bad.append(f"{where}: imports the CLI ({mod})")
            if root in ("torch", "safetensors") and not in_train:
                bad.append(f"{where}: imports {root} outside arcforge/train")
            if root == "huggingface_hub" and not where.startswith("arcforge/hub/"):
                bad.append(f"{where}: imports huggingface_hub outside arcforge/hub")
            if top and not in_train and root == "PIL":
                bad.append(
                    f"{where}: imports {mod} at module level (an optional extra: import it where used)"
                )
    return bad


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_every_import_respects_the_seams(path):
    assert violations([path]) == []


def test_the_checker_sees_lazy_and_relative_imports():
    fake = PKG / "_seam_probe.py"
    assert not fake.exists()
    src = "from .cli import app\n\ndef f():\n    import torch\n    from PIL import Image\n"
    parsed = ast.parse(src)
    assert parsed  # valid source
    fake.write_text(src)
    try:
        found = violations([fake])
    finally:
        fake.unlink()
    assert found == [
        "arcforge/_seam_probe.py: imports the CLI (arcforge.cli)",
        "arcforge/_seam_probe.py: imports the CLI (arcforge.cli.app)",
        "arcforge/_seam_probe.py: imports torch outside arcforge/train",
    ]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_every_module_imports():
    r = _run("import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in MODULES))
    assert r.returncode == 0, r.stderr


BLOCK = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {OPTIONAL!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def test_the_base_install_needs_no_torch_and_no_pillow():
    base = [m for m in MODULES if not m.startswith("arcforge.train")]
    code = (
        BLOCK
        + "import importlib\n"
        + "".join(f"importlib.import_module({m!r})\n" for m in base)
        + (
            "from typer.testing import CliRunner\nfrom arcforge.cli.app import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0, r.output\n"
            "r = CliRunner().invoke(app, ['--version'])\nassert r.exit_code == 0 and 'arcforge' in r.output\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'PIL', 'safetensors')))\n"
        )
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["train", "--data", "nowhere", "--max-steps", "1"], "train"),
        (["show", "x/y", "--png", "t.png"], "png"),
    ],
)
def test_a_command_needing_an_extra_names_it(argv, extra, tmp_path):
    code = BLOCK + (
        "from typer.testing import CliRunner\nfrom arcforge.cli.app import app\n"
        f"r = CliRunner().invoke(app, {argv!r})\nprint(r.exit_code)\nprint(r.output)\n"
    )
    if argv[0] == "show":  # a real dataset, so that only the picture is missing
        from arcforge import synthetic
        from arcforge.build import shard_writer
        from arcforge.task import tasks_to_table

        ds = tmp_path / "ds"
        task = next(iter(synthetic.generate(1, 0)))
        shard_writer.write_shards(tasks_to_table([task]), ds)
        code = code.replace("'x/y'", repr(task.id)).replace("'t.png'", repr(str(tmp_path / "t.png")))
        code = code.replace("'--png'", f"'--data', {str(ds)!r}, '--png'")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    exit_code, output = r.stdout.split("\n", 1)
    assert exit_code == "1" and f"pip install 'arcforge[{extra}]'" in output, output
    assert "internal error" not in output and "Traceback" not in output
