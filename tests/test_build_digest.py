"""The build of every mirrored source with --exclude-eval gives, file by file, the content that
``benchmarks/results/build_digest.json`` recorded (``benchmarks/bench_build_digest.py``): a refactor of the
data side changes no output. A change meant to alter the output re-records the file."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_build_digest import RESULTS, SOURCES, build_digests


def test_the_build_of_the_mirror_is_the_recorded_one(mirror_home, mirrored_names, tmp_path):
    missing = sorted(set(SOURCES) - set(mirrored_names))
    if missing:
        pytest.skip(f"the mirror lacks {', '.join(missing)}: the record was built from them")
    want = json.loads(RESULTS.read_text())["digests"]
    got = build_digests(mirror_home, tmp_path)
    assert sorted(got) == sorted(want)
    assert [k for k in want if got[k] != want[k]] == []
