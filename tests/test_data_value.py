"""benchmarks/bench_data_value.py runs end to end at its tiny size on the real mirror (so it cannot rot), and
its contaminated build really holds the ARC-AGI-2 training copies of ARC-AGI-1 evaluation tasks."""

from __future__ import annotations

import json

from benchmarks import bench_data_value as bench
from benchmarks import data_value_arms as dv
from benchmarks import gpu_check

RUN_FIELDS = {"seed", "train_tokens", *bench.METRICS}


def test_tiny_data_value_run(tmp_path, shared_sources, one_thread):
    out = tmp_path / "data_value.json"
    arc1 = (
        shared_sources / dv.ARC1
    )  # through gpu_check's --data-value, which runs bench_data_value's profiles
    gpu_check.main(["--device", "cpu", "--tiny", "--data-value", "--arc-dir", str(arc1), "--out", str(out)])
    doc = json.loads(out.read_text())
    ran = {"arc1_training", "corpus", "corpus_contaminated", "corpus_no_frames"}
    assert set(doc["arms"]) == ran and set(doc["arms"]) | set(doc["not_run"]) == set(dv.ARMS)
    budget = {r["train_tokens"] for runs in doc["arms"].values() for r in runs}
    for runs in doc["arms"].values():
        assert [r["seed"] for r in runs] == [0]
        for r in runs:
            assert (
                set(r) >= RUN_FIELDS and r["train_tokens"] > 0 and r["steps"] == bench.PROFILES["tiny"].steps
            )
            assert all(0.0 <= r[m] <= 1.0 for m in bench.METRICS)
            assert r["arc1_eval"]["scored"] + r["arc1_eval"]["too_long"] >= bench.PROFILES["tiny"].arc1_tasks
    assert (
        doc["profile"] == "tiny"
        and doc["device"] == "cpu"
        and len(budget) >= 1
        and doc["held_out"] == {"arc1": 6, "small": 3, "arc2": 3}
    )
    assert set(doc["summary"]) == ran and doc["summary"]["corpus"]["arc1_eval_token_accuracy"]["spread"] == 0
    data = doc["arm_data"]
    assert data["arc1_training"]["mix"] == {"arc_agi_1": 398}  # 2 ARC-1 training tasks are eval copies
    assert data["corpus_no_frames"]["model_changes"] == dv.NO_FRAMES
    assert data["corpus_no_frames"]["mix"] == data["corpus"]["mix"] and len(data["corpus"]["mix"]) > 5
    assert "evaluation" not in " ".join(data["corpus"]["splits"] + data["corpus_contaminated"]["splits"])
    lim = data["corpus"]["length_limits"]
    assert (
        lim["seq_len"] == 512 and lim["whole"] + lim["truncated"] + lim["dropped"] >= data["corpus"]["tasks"]
    )
    assert abs(sum(lim["token_share"].values()) - 1) < 0.01 and set(lim["token_share"]) <= set(
        data["corpus"]["mix"]
    )

    check = doc["contamination_check"]  # the contaminated build holds the ARC-AGI-2 copies of ARC-AGI-1 eval
    assert check["arc2_training_copies_of_arc1_eval"] == 375 and check["contaminated_excluded"] == 0
    # every copy is a training row, or was dropped as a copy of another *training* row (its content stays)
    assert check["in_contaminated_training_rows"] + len(check["dropped_by_dedup"]) == 375
    assert all("/training/" in kept for kept in check["dropped_by_dedup"].values())
    assert data["corpus_contaminated"]["mix"]["arc_agi_2"] - data["corpus"]["mix"]["arc_agi_2"] >= 374
    assert set(doc["not_run"]) <= {"corpus_generated"}
