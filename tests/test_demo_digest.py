"""The demo's outputs stay bit for bit what ``benchmarks/results/demo_digest.json`` recorded
(``benchmarks/bench_demo_digest.py``): a short demo on one thread, in fp32 and in bf16, compared on the same
kind of machine (CPU model and flags, torch), where the bits are comparable."""

from __future__ import annotations

import json

import pytest

from benchmarks.bench_demo_digest import AMPS, RESULTS, digest, machine

RECORD = json.loads(RESULTS.read_text())


@pytest.mark.parametrize("amp", AMPS)
def test_the_short_demo_is_bit_for_bit_the_recorded_one(tmp_path, arcforge_home, amp):
    here = machine()
    if here != RECORD["machine"]:
        pytest.skip(f"digests recorded on {RECORD['machine']}; this machine is {here} (CPU kernels differ)")
    assert RECORD["deterministic"][amp], "the recorded runs differed from each other"
    assert digest(tmp_path, amp) == RECORD["digests"][amp]
