"""The demo's outputs, bit for bit: a short demo (the demo's settings, 8 steps on 96 tasks, 8 held-out tasks,
2 votes, 1 test-time training step) on one thread with the precision pinned, run twice; writes the sha256 of
the trained weights, of the loss curve and of the scores, and the machine they were measured on, to
``benchmarks/results/demo_digest.json``. ``tests/test_demo_digest.py`` reruns it on the same kind of machine
(CPU model and flags, torch) and fails on any bit that moved: a change to the data, tokenizer, model,
trainer, decoder or test-time training that changes the demo's checkpoint or scores shows there, where the
full demo takes minutes.

Why pinned: ``--amp auto`` lets a short timing probe decide bf16 on a CPU with native bf16, and a busy
machine tips it either way (the full demo's figures then differ: demo.json's ``bf16`` says which ran).
Why "the same kind of machine": CPU kernels differ by instruction set (and torch version), so the bits
are only comparable where those match.

    python benchmarks/bench_demo_digest.py    # ~1 min idle
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "demo_digest.json"
# the demo's settings, shortened; one thread and a pinned precision (bits depend on both)
SHORT = {"steps": 8, "tasks": 96, "eval_tasks": 8, "votes": 2, "ttt_steps": 1, "threads": 1}
AMPS = ("off", "bf16")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "asimd", "sve")


def machine() -> dict:
    """What the bits depend on besides the code: the CPU (model, vector extensions), torch, and Pillow and
    zlib for the gallery's PNG bytes."""
    import zlib

    import PIL
    import torch

    from arcforge.train.device import cpu_flags

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    flags = cpu_flags()
    return {
        "cpu": model,
        "flags": [f for f in CPU_FLAGS if f in flags],
        "machine": platform.machine(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(work: Path, amp: str) -> dict:
    """Run the short demo offline in ``work`` with ``amp``; the digests of what it wrote."""
    import torch

    from arcforge.demo.run import DemoConfig, run_demo
    from arcforge.train import checkpoint as ckpt

    mirror = work / "empty-mirror"  # nothing to fetch: the built-in synthetic source alone, as offline
    mirror.mkdir(parents=True)
    threads = torch.get_num_threads()
    try:
        res = run_demo(work / "demo", DemoConfig(**SHORT, amp=amp), mirror=str(mirror))
    finally:
        torch.set_num_threads(threads)
    run = res.run_dir
    weights = sorted((run / "checkpoints").glob(f"step-*/{ckpt.WEIGHTS}"))[-1]
    losses = [
        json.loads(line)["loss"]
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]
    scores = {
        "per_family": res.per_family,
        "exact_all": res.exact_all,
        "pass2_all": res.pass2_all,
        "exact_no_ttt": res.exact_no_ttt,
        "pass2_no_ttt": res.pass2_no_ttt,
    }
    # the gallery shows each family's first held-out task with the model's first attempt: the decoder's
    # answers, where the scores of a short run are all zero
    return {
        "bf16": res.config["bf16"],
        "weights_sha256": _sha(weights.read_bytes()),
        "losses_sha256": _sha(json.dumps(losses).encode()),
        "scores_sha256": _sha(json.dumps(scores, sort_keys=True).encode()),
        "gallery_sha256": _sha(res.gallery_png.read_bytes()) if res.gallery_png else None,
        "final_loss": res.final_loss,
        "exact_all": res.exact_all,
        "pass2_all": res.pass2_all,
    }


def _digest_in_tmp(amp: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="demo_digest_") as tmp:
        return digest(Path(tmp), amp)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--jobs", type=int, default=1, help="runs at once, each in its own process (one thread each)"
    )
    a = ap.parse_args(argv)
    order = [amp for amp in AMPS for _ in range(2)]
    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(_digest_in_tmp, order))
    runs: dict[str, list[dict]] = {}
    for amp, d in zip(order, done, strict=True):
        runs.setdefault(amp, []).append(d)
    deterministic = {amp: rs[0] == rs[1] for amp, rs in runs.items()}
    out = {
        "benchmark": "demo_digest",
        "short_demo": SHORT,
        "machine": machine(),
        "deterministic": deterministic,
        "digests": {amp: rs[0] for amp, rs in runs.items()},
        "note": "each variant ran twice, each run in a process of its own; the test compares one rerun "
        "with these digests on the same CPU model and flags, torch, Pillow and zlib",
    }
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
