"""The suite's own guard: a test needing the real upstream data may be skipped only where ../shared does not
exist. Runs pytest on a one-test project laid out like this one, with and without a ../shared folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("with_shared", [True, False])
def test_a_skipped_shared_test_fails_the_run_only_where_shared_exists(tmp_path, with_shared):
    repo = tmp_path / "arcforge"
    (repo / "tests").mkdir(parents=True)
    shutil.copy(HERE / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "tests" / "test_one.py").write_text(
        "def test_needs_the_mirror(shared_sources):\n    assert shared_sources.is_dir()\n"
    )
    if with_shared:
        (tmp_path / "shared").mkdir()  # ../shared exists, but without arc-sources: the test is skipped
    env = {k: v for k, v in __import__("os").environ.items() if k != "ARCFORGE_MIRROR"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "1 skipped" in r.stdout and "needs the real upstream repos" in r.stdout, r.stdout
    if with_shared:
        assert r.returncode == 1 and "were skipped although" in r.stdout
    else:
        assert r.returncode == 0
