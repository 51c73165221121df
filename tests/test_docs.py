"""The README and docs: generated tables up to date, links and pictures present, the README short."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_benchmark_tables_are_generated_from_results():
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tables.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr


def test_tables_script_notices_a_changed_result(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import tables
    finally:
        sys.path.pop(0)
    before = tables.benchmarks_md()
    results = tmp_path / "results"
    results.mkdir()
    for f in tables.RESULTS.glob("*.json"):
        (results / f.name).write_text(f.read_text())
    (results / "amp_cpu.json").write_text((results / "amp_cpu.json").read_text().replace("0.1383", "0.2383"))
    monkeypatch.setattr(tables, "RESULTS", results)
    after = tables.benchmarks_md()
    assert before != after and "0.2383" in after and "0.2383" not in before


def test_readme_is_a_short_guide():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for section in ("## The two commands", "## Quickstart", "## What you get", "## Sources"):
        assert section in text


def test_links_and_pictures_exist():
    for doc in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)#]+)\)", doc.read_text()):
            if target.startswith("http"):
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_docs_speak_of_the_product_only():
    banned = re.compile(r"issue #?\d+|\bsession\b|another engineer|the issue's", re.I)
    for doc in [ROOT / "README.md", *DOCS]:
        hits = banned.findall(doc.read_text())
        assert not hits, f"{doc.name}: {hits}"
