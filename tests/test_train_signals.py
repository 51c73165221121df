"""A real ``arcforge train`` process under the signals and broken outputs a user meets: Ctrl-C twice
(and more) during training, the reader of its output killed (a parent, a ``tee``, a terminal), stdout on
a full disk. No traceback ever; a run whose log reader dies keeps training and saves its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_reliability_fuzz import _TINY_RUN, _tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def _train(data: Path, run: Path, steps: int, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "arcforge",
            "train",
            "-d",
            str(data),
            "--out",
            str(run),
            "--max-steps",
            str(steps),
            "--workers",
            "1",
            *_TINY_RUN,
        ],
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kw,
    )


def _wait_for_steps(run: Path, proc: subprocess.Popen, n: int = 2) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        m = run / "metrics.jsonl"
        if m.is_file() and len(m.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    pytest.fail("the training never reached its first steps")


@pytest.mark.parametrize("gap", [0.0, 0.2])
def test_ctrl_c_twice_and_more_during_training_prints_no_traceback(tmp_path, gap):
    data = _tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    proc = _train(data, run, 100_000, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for_steps(run, proc)
    for _ in range(4):  # the second stops at once, the others land while the run winds down
        proc.send_signal(signal.SIGINT)
        time.sleep(gap)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "Exception ignored" not in out and "internal error" not in out, out
    assert "interrupted:" in out
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, len(steps) + 1))


def test_a_killed_log_reader_never_stops_the_run_and_stdout_on_a_full_disk_is_one_line(tmp_path):
    data = _tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.readline()"], stdin=subprocess.PIPE
    )  # the parent reading the run's log, killed below
    proc = _train(data, run, 20, stdout=subprocess.DEVNULL, stderr=reader.stdin)
    reader.stdin.close()
    _wait_for_steps(run, proc, 1)
    reader.kill()
    reader.wait()
    assert proc.wait(timeout=300) == 0
    assert (run / "checkpoints" / "step-000020" / "model.safetensors").is_file()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 20
    if Path("/dev/full").exists():
        with open("/dev/full", "w") as full:
            proc = _train(data, tmp_path / "run2", 2, stdout=full, stderr=subprocess.PIPE)
            err = proc.communicate(timeout=300)[1]
        assert proc.returncode == 1 and "Error: cannot write the output (No space left on device)" in err, err
        assert "Traceback" not in err and "Exception ignored" not in err
        assert (tmp_path / "run2" / "checkpoints" / "step-000002").is_dir()  # the work itself was saved


_WORKER_HOOK = """
import sys
from arcforge.train.loop import _init_worker
_init_worker(0)
for error in (BrokenPipeError(32, "Broken pipe"), ValueError("shown")):
    try:  # what multiprocessing's handle-sharing thread does with an error
        raise error
    except BaseException:
        sys.excepthook(*sys.exc_info())
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_loader_worker_is_quiet_about_a_pipe_the_main_process_closed(debug):
    """A batch's handle still being sent when the loader shuts down (Ctrl-C) breaks the worker's pipe: no
    traceback for that, unless ARCFORGE_DEBUG=1; any other error a worker reports is still shown."""
    env = {k: v for k, v in os.environ.items() if k != "ARCFORGE_DEBUG"} | (
        {"ARCFORGE_DEBUG": "1"} if debug else {}
    )
    err = subprocess.run([sys.executable, "-c", _WORKER_HOOK], env=env, capture_output=True, text=True).stderr
    assert "ValueError: shown" in err
    assert ("BrokenPipeError" in err) == debug
