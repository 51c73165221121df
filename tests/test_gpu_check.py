"""benchmarks/gpu_check.py runs end to end on CPU (``--device cpu --tiny``), so it cannot rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_runs_on_cpu_tiny(tmp_path, shared_sources):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "gpu_check.json"
    arc = shared_sources / "fchollet" / "ARC-AGI" / "data"
    res = mod.main(["--device", "cpu", "--tiny", "--threads", "1", "--arc-dir", str(arc), "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["steps"] == 4 and saved["device_type"] == "cpu" and saved["tokens_per_s"] > 0
    assert saved["eval"]["tasks"] == 2 and saved["eval"]["ttt_steps"] == 1
    assert {"pass@2", "pass@2_before", "exact_match"} <= set(saved["eval"])
    assert all(r["ttt"]["steps"] == 1 for r in saved["per_task"])
    assert saved["mfu"] is None and res["params"] == saved["params"]
