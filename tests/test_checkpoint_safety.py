"""Checkpoints are files people download and share: nothing read from one executes (no pickle), every
defect is one clear line naming the file, and a checkpoint whose weights are NaN, cut short or not the
model's is never trained on or evaluated. Tiny models, a few steps each."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.errors import TrainError
from arcforge.train import checkpoint as ckpt
from arcforge.train.loop import train
from arcforge.train.runner import load_model
from tests import train_fixtures
from tests.test_train_faults import TINY, _cfgs

arc_shards = train_fixtures.arc_shards
runner = CliRunner()


class _Payload:
    """Unpickling this creates ``path``: the proof that a checkpoint's bytes ran as code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def run(arc_shards, tmp_path) -> Path:
    run = tmp_path / "run"
    train(*_cfgs(arc_shards, run, max_steps=2, ckpt_every=1))
    return run


def _step(run: Path, n: int) -> Path:
    return run / "checkpoints" / f"step-{n:06d}"


def test_checkpoints_hold_no_pickle_and_a_pickled_state_never_runs(arc_shards, run, tmp_path):
    ck = _step(run, 2)
    assert sorted(p.name for p in ck.iterdir()) == [
        "config.json",
        "model.safetensors",
        "state.json",
        "state.safetensors",
    ]
    proof = tmp_path / "ran"
    # an older checkpoint's layout (its state a pickle) carrying a payload
    for p in (ck / "state.json", ck / "state.safetensors"):
        p.unlink()
    torch.save({"step": 2, "x": _Payload(proof)}, ck / "state.pt")
    with pytest.raises(TrainError, match="never loaded"):
        ckpt.load_latest_intact(ck)
    # eval reads only weights: the old checkpoint still evaluates
    model, _ = load_model(ck)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not proof.exists()
    r = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "3"])
    assert not proof.exists()  # nothing ran
    # the run resumed from the older intact checkpoint, naming the pickled one it did not read
    assert r.exit_code == 0, r.output
    assert f"{ck / 'state.pt'}: the training state of an older arcforge, a pickle" in r.output


def test_a_pickle_anywhere_in_a_new_checkpoint_is_never_read(run, tmp_path):
    ck = _step(run, 2)
    proof = tmp_path / "ran"
    torch.save({"x": _Payload(proof)}, ck / "state.pt")  # planted beside the real state
    got = ckpt.load_latest_intact(run)
    assert got.state["step"] == 2 and not proof.exists()


@pytest.mark.parametrize("damage", ["zeroed_tail", "nan_weights", "inf_state", "header_2_62", "foreign_file"])
def test_damaged_weights_are_refused_and_resume_never_trains_on_them(arc_shards, run, damage):
    ck = _step(run, 2)
    name = "state.safetensors" if damage == "inf_state" else "model.safetensors"
    p = ck / name
    data = bytearray(p.read_bytes())
    if damage == "zeroed_tail":
        data[-len(data) // 3 :] = bytes(len(data) // 3)
    elif damage in ("nan_weights", "inf_state"):  # well-formed safetensors, bad values, checksum updated
        t = {
            k: (
                torch.full_like(v, float("nan" if damage == "nan_weights" else "inf"))
                if v.is_floating_point()
                else v
            )
            for k, v in load_file(str(p)).items()
        }
        save_file(t, str(p))
        _rewrite_checksum(ck, name)
        data = bytearray(p.read_bytes())
    elif damage == "header_2_62":
        data[:8] = struct.pack("<Q", 2**62)
    else:
        data = bytearray(b"PK\x03\x04 not a checkpoint at all")
    p.write_bytes(bytes(data))
    with pytest.raises(TrainError, match=f"{p}: damaged checkpoint file"):
        ckpt.load_latest_intact(ck)
    res = train(*_cfgs(arc_shards, run, max_steps=3, ckpt_every=1), resume=True)
    assert str(p) in res["skipped_checkpoints"][0]  # step 1, intact, was used instead
    assert [r["step"] for r in res["history"]] == [2, 3]
    assert all(r["loss"] == r["loss"] for r in res["history"])  # no NaN loss


def _rewrite_checksum(ck: Path, name: str) -> None:
    cfg = json.loads((ck / "config.json").read_text())
    cfg["files"][name] = {"sha256": ckpt._digest(ck / name), "bytes": (ck / name).stat().st_size}
    (ck / "config.json").write_text(json.dumps(cfg))


def test_eval_refuses_nan_and_float16_weights_and_foreign_tensors(arc_shards, run):
    ck = _step(run, 2)
    p = ck / "model.safetensors"
    pristine = load_file(str(p))
    cases = {
        "float16": ({k: v.half() for k, v in pristine.items()}, "of another shape or type"),
        "nan": ({k: torch.full_like(v, float("nan")) for k, v in pristine.items()}, "NaN or infinite"),
        "missing": ({k: v for i, (k, v) in enumerate(pristine.items()) if i}, "missing"),
        "extra": ({**pristine, "evil.weight": torch.zeros(3)}, "not in the model"),
    }
    for case, (weights, why) in cases.items():
        save_file(weights, str(p))
        _rewrite_checksum(ck, "model.safetensors")
        r = runner.invoke(
            app,
            ["eval", "-c", str(ck), "-d", str(arc_shards), "--limit", "1", "--votes", "1", "--threads", "1"],
        )
        assert r.exit_code == 1, (case, r.output)
        assert f"Error: {ck}" in r.output and why in r.output, (case, r.output)
        assert "Traceback" not in r.output and "internal error" not in r.output


def test_a_checkpoint_of_another_config_and_garbage_config_or_latest_are_one_line(arc_shards, run, tmp_path):
    ck = _step(run, 2)
    cfg = json.loads((ck / "config.json").read_text())
    variants = {
        "another model's config": {**cfg, "model": {**cfg["model"], "d_model": 64}},
        "a list": [1, 2],
        "no model table": {k: v for k, v in cfg.items() if k != "model"},
        "a huge model": {**cfg, "model": {**cfg["model"], "d_model": 2**40, "n_heads": 2}},
    }
    for what, value in variants.items():
        (ck / "config.json").write_text(json.dumps(value))
        r = runner.invoke(app, ["eval", "-c", str(ck), "-d", str(arc_shards), "--limit", "1", "--votes", "1"])
        assert r.exit_code == 1 and f"Error: {ck}" in r.output, (what, r.output)
        assert "internal error" not in r.output, (what, r.output)
    (ck / "config.json").write_bytes(b"\xff\xfe garbage \x00")
    with pytest.raises(TrainError, match=r"config\.json: damaged checkpoint file"):
        ckpt.load_latest_intact(ck)
    (ck / "config.json").write_text(json.dumps(cfg))
    # the weights of a run of another model under this run's name: --resume refuses them by name
    other = tmp_path / "other"
    model, data, train_cfg = _cfgs(arc_shards, other, max_steps=1)
    train(replace(model, d_model=64), data, train_cfg)
    (ck / "model.safetensors").write_bytes((_step(other, 1) / "model.safetensors").read_bytes())
    _rewrite_checksum(ck, "model.safetensors")
    r = runner.invoke(app, ["train", "--out", str(run), "--resume", "--max-steps", "3"])
    assert r.exit_code == 1 and f"Error: {ck}: the weights do not fit the model" in r.output, r.output
    assert "of another shape or type" in r.output and "internal error" not in r.output
    (run / "latest").write_bytes(b"\x00\xff../../etc\n")
    got = ckpt.load_latest_intact(run)  # a garbage pointer: the newest step folder that reads
    assert "latest: damaged" in got.skipped[0] and got.path == ck


def test_a_run_at_loss_nan_fails_instead_of_exiting_0(arc_shards, run):
    def nan_logits(module, args, output):  # a run whose every forward pass diverges
        return output * float("nan") if module.__class__.__name__ == "ArcTransformer" else None

    handle = torch.nn.modules.module.register_module_forward_hook(nan_logits)
    try:
        with pytest.raises(TrainError, match="the loss is nan at step 4"):
            train(*_cfgs(arc_shards, run, max_steps=4, ckpt_every=1), resume=True)
    finally:
        handle.remove()
    assert ckpt.load_latest_intact(run).state["step"] == 3  # skipped steps leave the weights finite


def test_cli_seed_lr_and_threads_out_of_range_are_one_line(arc_shards, tmp_path):
    base = ["train", "--data", str(arc_shards), "--out", str(tmp_path / "r"), *TINY]
    for args, want in (
        (["--seed", str(2**70)], "< 2^63"),
        (["--lr", "1e308"], "<= 10"),
        (["--eval-votes", "100000"], "from 1 to 64"),
    ):
        r = runner.invoke(app, [*base, *args])
        assert r.exit_code == 2 and want in r.output and "Traceback" not in r.output, (args, r.output)


def test_resume_after_a_kill_mid_metrics_line(arc_shards, run):
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo')  # a SIGKILL while the line was written
    res = train(*_cfgs(arc_shards, run, max_steps=3, ckpt_every=1), resume=True)
    assert [r["step"] for r in res["history"]] == [3]
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
