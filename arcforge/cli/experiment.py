"""``arcforge experiment grokfast|rope``: the paper reproductions of issue 7 (see arcforge/experiments)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import RichProgress, console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import JsonOpt
from arcforge.errors import TrainError

experiment_app = typer.Typer(help="Reproduce the papers behind the trainer (Grokfast, RoPE context extension).",
                             no_args_is_help=True)

OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the results JSON and PNG plot.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", help="torch CPU threads (0: torch's default).")]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise TrainError(f"--seeds must be comma-separated integers (got {text!r})") from None


def _threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)


@experiment_app.command("grokfast")
@handle_errors
def grokfast(
    steps: Annotated[int, typer.Option("--steps", help="Max optimizer steps per run.")] = 2000,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0,1,2",
    runs: Annotated[str, typer.Option("--runs", help="Comma-separated subset of: baseline, grokfast_ema, "
                                      "grokfast_ma, control_adamw_wd1 (default: all).")] = "",
    eval_every: Annotated[int, typer.Option("--eval-every", help="Evaluate train/val accuracy every N steps.")] = 50,
    stop_at: Annotated[float, typer.Option("--stop-at", help="Stop a run once val accuracy reaches this "
                                           "(0: never; steps-to-95/99 are unaffected below it).")] = 0.0,
    out: OutDirOpt = Path("benchmarks/results"),
    tag: Annotated[str, typer.Option("--tag", help="Result file stem.")] = "grokfast_modarith",
    threads: ThreadsOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """Grokfast (Lee et al. 2024) on x*y mod 97: baseline vs EMA vs MA vs an AdamW weight-decay control."""
    _threads(threads)
    from arcforge.experiments.grokfast_modarith import default_runs, run_benchmark

    chosen = default_runs()
    if runs:
        names = [r.strip() for r in runs.split(",") if r.strip()]
        unknown = sorted(set(names) - {r.name for r in chosen})
        if unknown:
            raise TrainError(f"unknown --runs {unknown}", hint=f"choose from {[r.name for r in chosen]}")
        chosen = [r for r in chosen if r.name in names]
    seed_list = _seeds(seeds)
    with RichProgress(enabled=progress_enabled(json_out)) as prog:
        prog.start("runs", "grokfast runs", total=len(chosen) * len(seed_list))
        report = run_benchmark(steps, seed_list, out, chosen, eval_every=eval_every,
                               stop_at=stop_at or None, on_run=lambda _r: prog.advance("runs"), tag=tag)
    summary = report["summary"]
    if json_out:
        print_json({"summary": summary, "json": str(out / f"{tag}.json"), "plot": str(out / f"{tag}.png")})
        return
    from rich.table import Table

    table = Table(title=f"Grokfast x*y mod 97 (max {steps} steps, seeds {seed_list})")
    for col in ("run", "steps to 95% val", "steps to 99% val", "median 95%", "final val acc", "wall s/run"):
        table.add_column(col)
    for s in summary:
        table.add_row(s["name"], str(s["steps_to_95"]), str(s["steps_to_99"]), str(s["median_steps_to_95"]),
                      str(s["final_val_acc"]), str(s["mean_wall_s"]))
    console.print(table)
    console.print(f"results: {out / (tag + '.json')}  plot: {out / (tag + '.png')}")


@experiment_app.command("rope")
@handle_errors
def rope(
    steps: Annotated[int, typer.Option("--steps", help="Training steps per RoPE mode.")] = 1500,
    finetune_steps: Annotated[int, typer.Option("--finetune-steps", help="Fine-tune steps per scaling "
                                                "method at the longer length (1-D model; 0: skip).")] = 100,
    train_side: Annotated[int, typer.Option("--train-side", help="Train on grid sides 2..N.")] = 5,
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated RoPE modes to train.")] = "1d,2d,2d+1d",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    tiny: Annotated[bool, typer.Option("--tiny", help="A seconds-long smoke variant.")] = False,
    out: OutDirOpt = Path("benchmarks/results"),
    tag: Annotated[str, typer.Option("--tag", help="Result file stem.")] = "rope_extension",
    threads: ThreadsOpt = 0,
    json_out: JsonOpt = False,
) -> None:
    """RoPE context extension on generated grid tasks: none/linear/NTK/dynamic NTK/YaRN at longer lengths,
    and 1-D vs 2-D vs mixed RoPE on grids larger than any seen in training."""
    _threads(threads)
    from arcforge.experiments.rope_extension import RopeStudy, run_study, table, tiny_study
    from arcforge.train.rope import MODES

    mode_list = tuple(m.strip() for m in modes.split(",") if m.strip())
    bad = sorted(set(mode_list) - set(MODES))
    if bad or not mode_list:
        raise TrainError(f"unknown --modes {bad}", hint=f"choose from {list(MODES)}")
    if tiny:
        study = tiny_study(seed)
        study.modes = mode_list
    else:
        s = train_side
        study = RopeStudy(train_side=s, buckets={"train": (2, s), "2L": (s + 2, s + 3), "4L": (2 * s, 2 * s + 1)},
                          modes=mode_list, steps=steps, finetune_steps=finetune_steps, seed=seed)
    stages = len(mode_list) + (5 if "1d" in mode_list and study.finetune_steps > 0 else 0)
    with RichProgress(enabled=progress_enabled(json_out)) as prog:
        prog.start("stages", "rope study", total=stages)
        report = run_study(study, out, tag=tag, on_stage=lambda _s: prog.advance("stages"))
    if json_out:
        print_json({"results": report["results"], "timings": report["timings"],
                    "json": str(out / f"{tag}.json"), "plot": str(out / f"{tag}.png")})
        return
    from rich.table import Table

    for stage in dict.fromkeys(r["stage"] for r in report["results"]):
        t = Table(title=f"RoPE study, {stage}: exact / token acc / loss per grid-size bucket "
                        f"(buckets {study.buckets})")
        rows = table(report, stage)
        for col in rows[0]:
            t.add_column(col)
        for r in rows:
            t.add_row(*[str(v) for v in r.values()])
        console.print(t)
    console.print(f"results: {out / (tag + '.json')}  plot: {out / (tag + '.png')}")


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
