"""The README's quickstart runs as written, on a tiny build.

The five lines are taken from the README itself (the first ``bash`` block under "## Quickstart") and run
one by one in a shell, in an empty folder, with `arcforge` and `python` being this checkout and this
interpreter. The upstream is the tiny hand-made one (tests/tiny_upstream.py) given as ``ARCFORGE_MIRROR``
and ``ARCFORGE_MANIFESTS``, so nothing needs the network or ../shared. The one change: training runs 2
steps instead of the README's 300.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quickstart\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    lines = [re.sub(r"\s+# .*$", "", line).strip() for line in block.splitlines()]
    return [line for line in lines if line]


def test_quickstart_has_the_five_steps():
    cmds = quickstart()
    assert len(cmds) == 5
    assert cmds[0].startswith("arcforge fetch") and "build --exclude-eval" in cmds[1]
    assert (
        "scan_parquet" in cmds[2]
        and cmds[3].startswith("arcforge train")
        and cmds[4].startswith("arcforge eval")
    )


def test_quickstart_runs_on_a_tiny_build(tiny, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, argv in (
        ("arcforge", f'{sys.executable} -m arcforge "$@"'),
        ("python", f'{sys.executable} "$@"'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\nexec {argv}\n")
        (bin_dir / name).chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "ARCFORGE_HOME": str(tmp_path / "home"),
        "ARCFORGE_MIRROR": str(tiny.mirror),
        "ARCFORGE_MANIFESTS": str(tiny.manifests_dir),
        "HF_HUB_OFFLINE": "1",
        "NO_COLOR": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    outputs = []
    for cmd in quickstart():
        cmd = cmd.replace("--max-steps 300", "--max-steps 2")
        r = subprocess.run(
            ["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
        outputs.append(r.stdout + r.stderr)
    assert "3 fetched" in outputs[0]
    assert (work / "arc-dataset" / "reports" / "excluded.jsonl").is_file()
    for source in ("tiny_eval", "tiny_train", "tiny_unknown"):  # the polars line read every source
        assert source in outputs[2]
    assert (work / "runs" / "arc").is_dir()
    assert re.search(r"exact", outputs[4])
