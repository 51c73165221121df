"""Run one arcforge step in a child process and SIGKILL it at a chosen ``os.rename``: a real kill, so no
``except``/``finally`` of arcforge runs (an in-process exception would run them).

    python -m tests.kill_child WHEN N build OUT LOCAL_FOLDER
    python -m tests.kill_child WHEN N fetch NAME MANIFESTS_DIR MIRROR

``WHEN`` is ``before`` or ``after``: kill just before the N-th ``os.rename`` call, or just after it.
The parent test then checks what was left and what the next run makes of it.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    when, n, step, *rest = argv
    calls = [0]
    real = os.rename

    def rename(src, dst, *a, **k):
        calls[0] += 1
        if when == "before" and calls[0] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *a, **k)
        if when == "after" and calls[0] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename
    if step == "build":
        from arcforge.build.pipeline import build

        out, local = rest
        build(Path(out), local=[Path(local)], use_cache=False)
    else:
        from arcforge.sources.fetch import fetch_source, resolve_mirror
        from arcforge.sources.manifest import load_manifests

        name, mdir, mirror = rest
        r = fetch_source(load_manifests(Path(mdir))[name], mirror=resolve_mirror(mirror), force=True)
        assert r.ok, r.error
    sys.exit(3)  # not killed: the rename was never reached


def run(*args: str, env: dict[str, str] | None = None) -> int:
    """Run the child; returns its exit code (-9 when it was killed as planned)."""
    import subprocess

    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.kill_child", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode not in (-signal.SIGKILL, 3):
        raise AssertionError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode


if __name__ == "__main__":
    main(sys.argv[1:])
