"""Faults a training run meets, each reproduced: a second run into the same folder, Ctrl-C mid-step,
damaged checkpoints, --resume surprises, a CUDA device on a CPU-only torch, memory that cannot fit,
training from the Hub, and where eval writes its submission. Tiny models, a few steps each."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.errors import TrainError
from arcforge.train import checkpoint as ckpt
from arcforge.train.config import DataConfig, ModelConfig, TrainConfig
from arcforge.train.loop import train
from tests import train_fixtures

arc_shards = train_fixtures.arc_shards
runner = CliRunner()
TINY = train_fixtures.TINY_CLI  # TINY[:6] + TINY[8:]: the same without --seq-len


def _cfgs(root: Path, out: Path, **kw):
    data = DataConfig(root=str(root), seq_len=512, batch_size=2, chunk_tasks=16, seed=5)
    t = {
        "max_steps": 6,
        "warmup_steps": 2,
        "log_every": 1,
        "ckpt_every": 0,
        "tensorboard": False,
        "eval_tasks": 0,
        "threads": 1,
        "amp": "off",
        **kw,
    }
    return (
        ModelConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=512),
        data,
        TrainConfig(out=str(out), **t),
    )


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{step:06d}" / "model.safetensors"))


def test_second_train_into_a_run_folder_refuses_and_overwrite_replaces_the_run(arc_shards, tmp_path):
    run = tmp_path / "run"
    train(*_cfgs(arc_shards, run, max_steps=2, seed=0))
    first = _weights(run, 2)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match="already holds an earlier run"):
        train(*_cfgs(arc_shards, run, max_steps=2, seed=1))
    assert torch.equal(_weights(run, 2)["embed.weight"], first["embed.weight"])  # nothing touched
    res = train(*_cfgs(arc_shards, run, max_steps=2, seed=1), overwrite=True)
    fresh = train(*_cfgs(arc_shards, tmp_path / "fresh", max_steps=2, seed=1))
    got = _weights(run, 2)
    assert res["checkpoint"].endswith("step-000002")
    assert not torch.equal(got["embed.weight"], first["embed.weight"])  # the new run's weights, not stale
    for k, v in _weights(tmp_path / "fresh", 2).items():
        assert torch.equal(got[k], v)
    assert (run / "notes.txt").read_text() == "mine"  # a file the run did not write is kept
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert fresh["steps"] == 2

    r = runner.invoke(app, ["train", "--data", str(arc_shards), "--out", str(run), "--max-steps", "1", *TINY])
    assert r.exit_code == 1 and "already holds" in r.output and "--overwrite" in r.output


def test_save_checkpoint_replaces_an_existing_step_folder(tmp_path):
    w1, w2 = {"w": torch.zeros(3)}, {"w": torch.ones(3)}
    ckpt.save_checkpoint(tmp_path, 5, w1, {"step": 5}, {"model": {}})
    ckpt.save_checkpoint(tmp_path, 5, w2, {"step": 5}, {"model": {}})
    assert torch.equal(ckpt.load_checkpoint(tmp_path)[1]["w"], w2["w"])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000005"]


class _SigintAt:
    """A global torch forward hook that sends this process SIGINT during the forward pass number ``n``
    (inside an optimizer step, as a Ctrl-C lands), or raises KeyboardInterrupt there with ``raise_=True``."""

    def __init__(self, n: int, raise_: bool = False) -> None:
        self.n, self.raise_, self.calls = n, raise_, 0

    def __call__(self, module, args, output):
        if module.__class__.__name__ == "ArcTransformer":
            self.calls += 1
            if self.calls == self.n:
                if self.raise_:
                    raise KeyboardInterrupt
                for child in multiprocessing.active_children():  # a terminal's Ctrl-C reaches the
                    os.kill(child.pid, signal.SIGINT)  # DataLoader workers too
                os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize(
    ("raise_", "workers"),
    [(False, 0), (True, 0), (False, 1)],
    ids=["sigint", "raised", "sigint-with-loader-worker"],
)
def test_ctrl_c_mid_step_resumes_exactly(arc_shards, tmp_path, raise_, workers):
    kw = {"grad_accum": 2, "num_workers": workers}
    full = [r["loss"] for r in train(*_cfgs(arc_shards, tmp_path / "a", **kw))["history"]]
    hook = _SigintAt(n=6, raise_=raise_)  # forward 6 = 2nd micro-batch of step 3
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(*_cfgs(arc_shards, tmp_path / "b", **kw))
    finally:
        handle.remove()
    done = 3 if not raise_ else 2  # SIGINT: step 3 finishes first; raised mid-step: step 3 never happened
    state = ckpt.read_checkpoint(tmp_path / "b" / "checkpoints" / f"step-{done:06d}")[2]
    assert state["step"] == done and state["data"]["batches"] == 2 * done  # no batch counted twice
    rest = train(*_cfgs(arc_shards, tmp_path / "b", **kw), resume=True)["history"]
    assert [r["step"] for r in rest] == list(range(done + 1, 7))
    assert [r["loss"] for r in rest] == full[done:]


def _run_with_checkpoints(root: Path, run: Path) -> None:
    train(*_cfgs(root, run, max_steps=4, ckpt_every=2))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000004"]


@pytest.mark.parametrize("damage", ["truncated_weights", "empty_state"])
def test_damaged_checkpoint_is_named_and_the_newest_intact_one_is_used(arc_shards, tmp_path, damage):
    run = tmp_path / "run"
    _run_with_checkpoints(arc_shards, run)
    bad = (
        run
        / "checkpoints"
        / "step-000004"
        / ("model.safetensors" if damage == "truncated_weights" else "state.safetensors")
    )
    bad.write_bytes(bad.read_bytes()[:100] if damage == "truncated_weights" else b"")
    got = ckpt.load_latest_intact(run)
    assert got.path.name == "step-000002" and str(bad) in got.skipped[0] and "damaged" in got.skipped[0]
    with pytest.raises(TrainError, match=f"{bad}: damaged checkpoint file"):
        ckpt.load_latest_intact(bad.parent)  # a checkpoint folder named directly: no fallback
    res = train(*_cfgs(arc_shards, run, max_steps=4, ckpt_every=2), resume=True)
    assert [r["step"] for r in res["history"]] == [3, 4] and str(bad) in res["skipped_checkpoints"][0]
    ckpt.load_latest_intact(run)  # step 4 was written again, intact


def test_damaged_checkpoint_through_the_cli_is_one_clear_line(arc_shards, tmp_path):
    run = tmp_path / "run"
    _run_with_checkpoints(arc_shards, run)
    bad = run / "checkpoints" / "step-000004" / "model.safetensors"
    bad.write_bytes(bad.read_bytes()[:100])
    r = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(run),
            "--data",
            str(arc_shards),
            "--limit",
            "1",
            "--votes",
            "1",
            "--threads",
            "1",
        ],
    )
    assert r.exit_code == 0 and f"warning: {bad}: damaged checkpoint file" in r.output, r.output
    r = runner.invoke(app, ["eval", "--checkpoint", str(bad.parent), "--data", str(arc_shards)])
    assert r.exit_code == 1 and f"{bad}: damaged checkpoint file" in r.output
    assert "internal error" not in r.output and "Traceback" not in r.output


def test_resume_refuses_without_a_checkpoint_or_with_other_model_options(arc_shards, tmp_path):
    r = runner.invoke(
        app, ["train", "--data", str(arc_shards), "--out", str(tmp_path / "empty"), "--resume", *TINY]
    )
    assert r.exit_code == 1 and "no checkpoint to resume from" in r.output
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "--data", str(arc_shards), "--out", str(run), "--max-steps", "2", *TINY])
    assert r.exit_code == 0, r.output
    saved = (run / "run.toml").read_text()
    assert "d_model = 32" in saved and 'amp = "off"' in saved
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(arc_shards),
            "--out",
            str(run),
            "--resume",
            "--d-model",
            "64",
            "--heads",
            "2",
        ],
    )
    assert r.exit_code == 1 and "model.d_model: 32 -> 64" in r.output
    # without model options, --resume continues with the run's own config (run.toml) ...
    r = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 3
    # ... or, without run.toml, its latest checkpoint's config.json
    (run / "run.toml").unlink()
    r = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == 4


def test_config_file_reproduces_a_run_and_flags_override_it(arc_shards, tmp_path):
    a = tmp_path / "a"
    r = runner.invoke(app, ["train", "--data", str(arc_shards), "--out", str(a), "--max-steps", "2", *TINY])
    assert r.exit_code == 0, r.output
    b = tmp_path / "b"
    r = runner.invoke(app, ["train", "--config", str(a / "run.toml"), "--out", str(b), "--json"])
    assert r.exit_code == 0, r.output
    for k, v in _weights(a, 2).items():
        assert torch.equal(_weights(b, 2)[k], v)  # same config file, same run
    c = tmp_path / "c"  # a checkpoint's config.json works as --config too
    r = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(a / "checkpoints" / "step-000002" / "config.json"),
            "--out",
            str(c),
            "--d-model",
            "64",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    cfg = json.loads((c / "checkpoints" / "step-000002" / "config.json").read_text())
    assert cfg["model"]["d_model"] == 64 and cfg["model"]["n_layers"] == 1 and cfg["train"]["amp"] == "off"


def test_cuda_device_without_cuda_is_one_line(arc_shards, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: --device cuda is valid here")
    r = runner.invoke(
        app, ["train", "--data", str(arc_shards), "--out", str(tmp_path / "r"), "--device", "cuda", *TINY]
    )
    assert r.exit_code == 1 and "Error: --device cuda:" in r.output and "internal error" not in r.output
    assert ("built without CUDA" in r.output) != torch.backends.cuda.is_built()


def test_seq_len_beyond_memory_fails_up_front_with_the_size_needed(arc_shards, tmp_path):
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(arc_shards),
            "--out",
            str(tmp_path / "r"),
            "--d-model",
            "64",
            "--layers",
            "2",
            "--heads",
            "2",
            "--seq-len",
            "65536",
            "--batch-size",
            "2",
        ],
    )
    assert r.exit_code == 1 and "--seq-len 65536" in r.output and "GiB per training step" in r.output
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_plain_progress_lines_when_stderr_is_not_a_terminal(arc_shards, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_LOG_SECONDS", "0")  # every step (the default is 30 s)
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(arc_shards),
            "--out",
            str(tmp_path / "r"),
            "--max-steps",
            "3",
            "--log-every",
            "100",
            *TINY,
        ],
    )
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("step ")]
    assert len(lines) >= 3 and all(k in lines[0] for k in ("loss", "tok/s", "s/step", "eta"))
    assert "train: 0/3" in r.stderr  # the plain progress of the run


def test_eval_submission_lives_outside_rotated_checkpoints_and_shows_the_plan(arc_shards, tmp_path):
    run = tmp_path / "run"
    train(*_cfgs(arc_shards, run, max_steps=2))
    r = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(run),
            "--data",
            str(arc_shards),
            "--limit",
            "2",
            "--votes",
            "2",
            "--threads",
            "1",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    sub = Path(json.loads(r.stdout)["submission"])
    assert sub == run / "eval" / "evaluation" / "step-000002" / "submission.json" and sub.is_file()
    assert "eval: 2 tasks of evaluation x 2 votes" in r.stderr
    train(*_cfgs(arc_shards, run, max_steps=8, keep_checkpoints=1, ckpt_every=2), resume=True)
    assert not (run / "checkpoints" / "step-000002").exists() and sub.is_file()  # rotation kept it


def test_train_from_a_hub_dataset(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    from arcforge.hub.plan import collect_files, write_tree
    from tests.publish_helpers import build_out, hf_env  # noqa: F401
    from tests.test_publish_readback import REPO, FakeHub

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    out = build_out(tmp_path / "out", sources=("arc_agi_1",))
    repo = write_tree(collect_files(out), tmp_path / "repo")
    with FakeHub(repo) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        for spec in (REPO, f"hf://datasets/{REPO}@v1"):
            run = tmp_path / spec.replace("/", "_").replace(":", "")
            r = runner.invoke(
                app,
                [
                    "train",
                    "-d",
                    spec,
                    "-s",
                    "arc_agi_1",
                    "--out",
                    str(run),
                    "--max-steps",
                    "1",
                    "--seq-len",
                    "2048",
                    *TINY[:6],
                    *TINY[8:],
                    "--json",
                ],
            )
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["steps"] == 1
        assert any("/resolve/" in x for x in hub.requests)


def test_demo_prints_plain_progress_off_a_terminal(tmp_path, arcforge_home, monkeypatch):
    monkeypatch.setenv("ARCFORGE_LOG_SECONDS", "0")
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    r = runner.invoke(
        app,
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--steps",
            "3",
            "--tasks",
            "16",
            "--eval-tasks",
            "4",
            "--families",
            "flip",
            "--mirror",
            str(empty_mirror),
            "--threads",
            "1",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    steps = [ln for ln in err if ln.startswith("step ")]
    assert len(steps) >= 3 and all(k in steps[-1] for k in ("loss", "tok/s", "s/step", "eta"))
    assert any(ln.startswith("train: 3/3") for ln in err) and any(ln.startswith("eval: 4/4") for ln in err)
    assert json.loads(r.stdout)["config"]["torch_threads"] == 1


@pytest.mark.parametrize("workers", ["0", "1"])
def test_data_errors_are_one_line_also_from_a_loader_worker(arc_shards, tmp_path, workers):
    args = ["train", "-d", str(arc_shards), "--workers", workers, *TINY[:6], *TINY[8:]]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "-s", "nope"])
    assert r.exit_code == 1 and "no shards match" in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--seq-len", "16"])  # no example fits
    assert r.exit_code == 1 and "holds no example that fits seq_len=16" in r.output, r.output
    assert "Traceback" not in r.output and "internal error" not in r.output


def test_a_resumed_run_keeps_the_bf16_choice_amp_auto_made():
    from arcforge.train.loop import Trainer

    m = ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=64)
    a = Trainer(m, TrainConfig(amp="auto"), device=torch.device("cpu"))
    state = a.state()
    assert state["bf16"] == a.bf16
    b = Trainer(m, TrainConfig(amp="auto"), device=torch.device("cpu"))
    b.load_state(a.model.state_dict(), {**state, "bf16": not a.bf16})  # as if the probe had chosen otherwise
    assert b.bf16 is (not a.bf16)
    c = Trainer(m, TrainConfig(amp="off"), device=torch.device("cpu"))
    c.load_state(a.model.state_dict(), {**state, "bf16": True})  # an explicit --amp wins
    assert c.bf16 is False
