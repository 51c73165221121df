"""One source of configuration: the CLI is checked against the config dataclasses, choices are Enums,
bad values are usage errors (exit 2), run.toml round-trips; the machine probes (threads, bf16) and the plain
progress lines. No training here (fast)."""

from __future__ import annotations

import io
import math
import time
from dataclasses import fields
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.cli.logprogress import Heartbeat, PlainProgress
from arcforge.cli.train import EVAL_SECTIONS, TRAIN_SECTIONS, fields_of
from arcforge.train import config as C
from arcforge.train.device import cpu_flags, free_cpus, native_bf16

runner = CliRunner()
COMMAND = typer.main.get_command(app)
# options that are actions or outputs of one invocation, not settings of a run
NOT_SETTINGS = {"--config", "--resume", "--overwrite", "--json", "--checkpoint", "--submission", "--help"}


def _params(name: str) -> list:
    return [p for p in COMMAND.commands[name].params if p.param_type_name == "option"]


@pytest.mark.parametrize(("command", "sections"), [("train", TRAIN_SECTIONS), ("eval", EVAL_SECTIONS)])
def test_every_option_is_a_config_field_without_a_default_of_its_own(command, sections):
    seen = set()
    for p in _params(command):
        if p.opts[0] in NOT_SETTINGS:
            continue
        paths = fields_of(p.opts[0], sections)
        assert paths, f"{command} {p.opts[0]} sets no config field"
        assert p.default in (None, ()), f"{command} {p.opts[0]} has its own default {p.default!r}"
        d = C.default_of(paths[0])
        shown = ",".join(d) if isinstance(d, list) else "all" if d is None else getattr(d, "value", d)
        if not isinstance(d, bool):
            assert p.show_default == str(shown), (p.opts[0], p.show_default, shown)
        for path in paths:
            C.default_of(path)  # the field exists
        seen.update(paths)
    assert "model.d_model" in seen or command == "eval"


def test_one_set_of_defaults_for_cli_library_and_demo():
    from arcforge.demo.run import DemoConfig

    m, d = C.ModelConfig(), C.DataConfig()
    assert (m.d_model, m.n_layers, m.n_heads, d.batch_size) == (128, 3, 4, 8)
    # the demo sets only what its small tasks need; the model, batch and precision are the config defaults
    assert not {f.name for f in fields(DemoConfig)} & {"d_model", "n_layers", "n_heads", "batch_size"}
    run = DemoConfig().run_config(Path("data"), Path("run"), "synthetic")
    assert (run.model.d_model, run.data.batch_size) == (m.d_model, d.batch_size)
    assert run.train.amp == C.TrainConfig().amp
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert "[default: (128)]" in r.output and "[default: (8)]" in r.output
    # train/eval read build's output folder by default
    out = next(p for p in COMMAND.commands["build"].params if p.name == "out")
    assert str(out.default) == C.DEFAULT_DATA == C.EvalConfig().data


def test_enum_choices_are_what_the_trainer_accepts():
    from arcforge.errors import TrainError
    from arcforge.train.rope import RopeConfig

    for mode in C.RopeMode:
        for scaling in C.RopeScaling:
            assert RopeConfig(head_dim=16, mode=mode, scaling=scaling).mode == mode.value
    for bad in ({"mode": "3d"}, {"scaling": "xpos"}):
        with pytest.raises(TrainError, match="unknown RoPE") as e:
            RopeConfig(head_dim=16, **bad)
        assert "use one of" in e.value.hint


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["--rope", "3d"], "1d|2d|2d+1d"),
        (["--rope-scaling", "ropey"], "none|linear|ntk|dynamic_ntk|yarn"),
        (["--grokfast", "fast"], "none|ema|ma"),
        (["--amp", "fp8"], "auto|bf16|off"),
        (["--loss-on", "inputs"], "test|outputs"),
    ],
)
def test_bad_choice_exits_2_and_help_lists_the_choices(args, choices):
    r = runner.invoke(app, ["train", *args])
    assert r.exit_code == 2 and "Invalid value for" in r.output and args[0] in r.output
    assert choices in runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--batch-size", "0"], "--batch-size"),
        (["--chunk-tasks", "0"], "--chunk-tasks"),
        (["--log-every", "0"], "--log-every"),
        (["--workers", "-1"], "--workers"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--max-steps", "0"], "--max-steps"),
        (["--grad-accum", "0"], "--grad-accum"),
        (["--seq-len", "4"], "--seq-len"),
        (["--d-model", "30", "--heads", "4"], "--d-model"),
        (["--device", "gpu"], "--device"),
        (["--grokfast-alpha", "1.5"], "--grokfast-alpha"),
    ],
)
def test_bad_train_values_are_usage_errors_naming_the_option(args, flag, tmp_path):
    r = runner.invoke(app, ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), *args])
    assert r.exit_code == 2, r.output
    assert f"Invalid value for '{flag}'" in r.output and "internal error" not in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--votes", "0"], ["--limit", "-1"], ["--rope-factor", "0.5"]])
def test_bad_eval_values_are_usage_errors(args, tmp_path):
    r = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path), *args])
    assert r.exit_code == 2 and f"Invalid value for '{args[0]}'" in r.output, r.output


def test_run_toml_round_trips_and_refuses_unknown_keys(tmp_path):
    run = C.RunConfig().with_values(
        {
            "model.d_model": 64,
            "model.n_heads": 2,
            "data.seq_len": 512,
            "data.sources": ["arc_agi_1"],
            "train.grokfast.kind": "ema",
            "train.amp": "off",
            "data.augment.keep_zero": False,
        }
    )
    assert run.model.max_seq_len == 512  # the model's context follows data.seq_len
    f = tmp_path / "run.toml"
    f.write_text(run.to_toml())
    back = C.RunConfig.load(f)
    assert back == run and back.train.grokfast.kind is C.GrokfastKind.ema and back.data.splits == ["training"]
    assert back.model.rope_original_max_side is None  # None is left out of TOML and comes back as None
    f.write_text(run.to_toml().replace("[train]", "[train]\nmax_stepz = 3"))
    with pytest.raises(C.ConfigError, match=r"unknown key train\.max_stepz"):
        C.RunConfig.load(f)
    f.write_text("[model\n")
    with pytest.raises(C.ConfigError, match="not valid TOML"):
        C.RunConfig.load(f)


def test_config_file_values_and_errors_through_the_cli(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("[data]\nbatch_size = 0\n")
    r = runner.invoke(app, ["train", "--config", str(f), "--data", str(tmp_path)])
    assert r.exit_code == 2 and "data.batch_size" in r.output and "run.toml" in r.output, r.output
    # a value given on the command line overrides the file's (the bad one is replaced: no usage error)
    r = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(f),
            "--batch-size",
            "2",
            "--data",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "run"),
        ],
    )
    assert r.exit_code == 1 and "dataset folder not found" in r.output, r.output


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs /proc/stat (Linux)")
def test_busy_cpus_now_sees_another_process_spin():
    """A process spinning on a CPU shows as (about) one busy CPU; this process's own work does not count."""
    import subprocess
    import sys

    from arcforge.train.device import busy_cpus_now

    spin = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 20: pass"]
    )
    try:
        time.sleep(0.3)  # let it start
        assert busy_cpus_now(0.5) > 0.5
    finally:
        spin.kill()
        spin.wait()


def test_free_cpus_counts_affinity_quota_and_load():
    assert free_cpus(affinity=2, total=2, load=0.3, quota=None) == 2
    assert free_cpus(affinity=2, total=2, load=1.2, quota=None) == 1  # one core busy elsewhere
    assert free_cpus(affinity=2, total=2, load=6.0, quota=None) == 1  # at least one
    assert free_cpus(affinity=8, total=16, load=2.0, quota=None) == 8  # only the CPUs we may run on
    assert free_cpus(affinity=8, total=8, load=0.0, quota=1.5) == 1  # a cgroup quota of 1.5 CPUs


def test_native_bf16_needs_amx_or_avx512_bf16(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert "avx512f" in cpu_flags(info) and not native_bf16(cpu_flags(info))  # AVX512 alone is emulation
    info.write_text("flags\t\t: fpu avx512f avx512_bf16\n")
    assert native_bf16(cpu_flags(info))
    assert native_bf16({"amx_bf16"}) and not native_bf16(set())


def test_amp_auto_never_picks_emulated_bf16_on_a_cpu():
    from arcforge.train.device import cpu_bf16_auto

    assert cpu_bf16_auto({"avx512f", "avx512_vnni"}) is False  # no probe: emulated bf16 is never used
    # with native bf16 the probe decides, once per thread count, so a run keeps its choice
    assert cpu_bf16_auto({"amx_bf16"}) == cpu_bf16_auto({"amx_bf16"})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plain_progress_prints_at_most_every_interval_with_eta():
    clock, out = Clock(), io.StringIO()
    p = PlainProgress(out, interval=30, clock=clock)
    p.start("eval", "eval", total=100)
    clock.t += 2
    p.advance("eval")  # the first item: an early estimate
    assert out.getvalue().splitlines()[-1] == "eval: 1/100 (1%)  2 s/item  eta 3m18s  elapsed 2s"
    for _ in range(9):
        clock.t += 2
        p.advance("eval")  # 18 s more: nothing printed
    assert out.getvalue().count("\n") == 2
    clock.t += 13
    p.advance("eval")  # 31 s since the last line
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "11/100" in lines[2] and "eta" in lines[2] and "s/item" in lines[2]
    p.finish("eval")
    assert out.getvalue().splitlines()[-1].endswith("done")


def test_heartbeat_between_regular_log_lines():
    clock, out = Clock(), io.StringIO()
    hb = Heartbeat(lambda r: f"step {r['step']}", out, interval=30, clock=clock)
    for step in range(1, 8):
        clock.t += 10
        hb({"step": step})
    assert out.getvalue().splitlines() == ["step 3", "step 6"]
    hb.mark()
    clock.t += 29
    hb({"step": 9})
    assert out.getvalue().splitlines()[-1] == "step 6"


def test_memory_estimate_grows_with_the_square_of_seq_len():
    from arcforge.train.loop import memory_needed

    m = C.ModelConfig(d_model=64, n_layers=2, n_heads=2)
    big = memory_needed(m, C.DataConfig(seq_len=65536, batch_size=2))
    assert big > 64 * 2**30  # the [2, 65536, 65536] bool mask alone is 8 GiB, one layer's scores 64 GiB
    assert memory_needed(m, C.DataConfig(seq_len=2048, batch_size=2)) < 2**30
    assert math.isclose(memory_needed(m, C.DataConfig(seq_len=131072, batch_size=2)) / big, 4, rel_tol=0.05)


def test_without_the_train_extra_the_command_says_what_to_install(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None\n"  # as if torch were not installed
        "from arcforge.cli.app import app\n"
        f"app(['train', '--data', {str(tmp_path)!r}])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert r.returncode == 1 and "needs torch" in r.stderr and "pip install 'arcforge[train]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_eval_config_file_and_conflicting_train_flags_are_usage_errors(tmp_path):
    f = tmp_path / "eval.toml"
    f.write_text("[eval]\nvotes = 0\n")
    r = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path), "--config", str(f)])
    assert r.exit_code == 2 and "eval.votes" in r.output and "eval.toml" in r.output, r.output
    r = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(tmp_path),
            "--config",
            str(f),
            "--votes",
            "2",
            "-d",
            str(tmp_path / "none"),
        ],
    )
    assert r.exit_code == 1 and "dataset folder not found" in r.output  # the flag replaced the file's value
    r = runner.invoke(app, ["train", "--resume", "--overwrite"])
    assert r.exit_code == 2 and "pick one" in r.output


def test_amp_auto_probe_works_inside_no_grad_and_inference_mode():
    """``eval --amp auto`` decides bf16 while decoding, i.e. under no_grad / inference_mode: the probe's
    backward pass must still run there."""
    import torch

    from arcforge.train.device import bf16_faster

    with torch.no_grad():
        assert bf16_faster(d=32, rows=8, repeats=1) in (True, False)
    with torch.inference_mode():
        assert bf16_faster(d=32, rows=8, repeats=1) in (True, False)
