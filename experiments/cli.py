"""``python -m experiments grokfast|rope``: the paper reproductions behind the trainer, run as scripts from
the repository root (they are not part of the arcforge package; results go to benchmarks/results)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import RichProgress, console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import JsonOpt, split_csv
from arcforge.errors import TrainError
from arcforge.task import MAX_GRID_SIDE
from arcforge.train.config import RopeMode
from experiments.grokfast_modarith import GrokStudy
from experiments.rope_extension import RopeStudy

experiment_app = typer.Typer(
    help="Reproduce the papers behind the trainer (Grokfast, RoPE context extension). "
    "Example: python -m experiments grokfast --steps 2000 --seeds 0,1,2",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the results JSON and PNG plot.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=0, show_default=False, help="torch CPU threads (default or 0: torch's)."),
]


MAX_STEPS = 1_000_000  # every run's loop is bounded by its options
_G, _R = GrokStudy(), RopeStudy()  # the studies' defaults, shown in --help (they live in the study classes)


def _csv(values: tuple) -> str:
    return ",".join(map(str, values))


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in split_csv(text)]
    except ValueError:
        seeds = []
    if not seeds or not all(0 <= s < 2**63 for s in seeds):
        raise TrainError(f"--seeds must be comma-separated integers from 0 to 2^63-1 (got {text!r})")
    return seeds


def _threads(n: int | None) -> None:
    from arcforge.train.device import check_cpus
    from experiments import set_threads

    set_threads(check_cpus("--threads", n or 0))


@experiment_app.command("grokfast")
@handle_errors
def grokfast(
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=MAX_STEPS, help="Max optimizer steps per run.")
    ] = _G.steps,
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = _csv(_G.seeds),
    runs: Annotated[
        str,
        typer.Option(
            "--runs",
            help="Comma-separated subset of: baseline, grokfast_ema, "
            "grokfast_ma, control_adamw_wd1 (default: all).",
        ),
    ] = "",
    eval_every: Annotated[
        int, typer.Option("--eval-every", min=1, max=MAX_STEPS, help="Evaluate accuracy every N steps.")
    ] = _G.eval_every,
    stop_at: Annotated[
        float,
        typer.Option(
            "--stop-at",
            min=0.0,
            max=1.0,
            help="Stop a run once val accuracy reaches this "
            "(0: never; steps-to-95/99 are unaffected below it).",
        ),
    ] = 0.0,
    out: OutDirOpt = Path("benchmarks/results"),
    tag: Annotated[str, typer.Option("--tag", help="Result file stem.")] = "grokfast_modarith",
    init: Annotated[
        str,
        typer.Option(
            "--init",
            help="trainer (the model's N(0, 0.02) init) or torch_default "
            "(torch's layer defaults, as the paper's code: embeddings N(0, 1)).",
        ),
    ] = "trainer",
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Grokfast (Lee et al. 2024) on x*y mod 97: baseline vs EMA vs MA vs an AdamW weight-decay control."""
    _threads(threads)
    from experiments.grokfast_modarith import default_runs, run_benchmark

    if init not in ("trainer", "torch_default"):
        raise TrainError(f"unknown --init {init!r}", hint="use trainer or torch_default")
    chosen = default_runs(init)
    if runs:
        names = split_csv(runs)
        unknown = sorted(set(names) - {r.name for r in chosen})
        if unknown:
            raise TrainError(f"unknown --runs {unknown}", hint=f"choose from {[r.name for r in chosen]}")
        chosen = [r for r in chosen if r.name in names]
    seed_list = _seeds(seeds)
    with RichProgress(enabled=progress_enabled(json_out)) as prog:
        prog.start("runs", "grokfast runs", total=len(chosen) * len(seed_list))
        report = run_benchmark(
            steps,
            seed_list,
            out,
            chosen,
            eval_every=eval_every,
            stop_at=stop_at or None,
            on_run=lambda _r: prog.advance("runs"),
            tag=tag,
        )
    summary = report["summary"]
    if json_out:
        print_json({"summary": summary, "json": str(out / f"{tag}.json"), "plot": str(out / f"{tag}.png")})
        return
    from rich.table import Table

    table = Table(title=f"Grokfast x*y mod 97 (max {steps} steps, seeds {seed_list})")
    for col in ("run", "steps to 95% val", "steps to 99% val", "median 95%", "final val acc", "wall s/run"):
        table.add_column(col)
    for s in summary:
        table.add_row(
            s["name"],
            str(s["steps_to_95"]),
            str(s["steps_to_99"]),
            str(s["median_steps_to_95"]),
            str(s["final_val_acc"]),
            str(s["mean_wall_s"]),
        )
    console.print(table)
    console.print(f"results: {out / (tag + '.json')}  plot: {out / (tag + '.png')}")


@experiment_app.command("rope")
@handle_errors
def rope(
    steps: Annotated[
        int, typer.Option("--steps", min=1, max=MAX_STEPS, help="Training steps per RoPE mode.")
    ] = _R.steps,
    finetune_steps: Annotated[
        int,
        typer.Option(
            "--finetune-steps",
            min=0,
            max=MAX_STEPS,
            help="Fine-tune steps per (mode, scaling method) at the longer length (0: skip).",
        ),
    ] = _R.finetune_steps,
    finetune_side: Annotated[
        int, typer.Option("--finetune-side", min=2, max=30, help="Fine-tune on grid sides 2..N.")
    ] = _R.finetune_side,
    finetune_modes: Annotated[
        str,
        typer.Option("--finetune-modes", help="Comma-separated modes to fine-tune (default: all trained)."),
    ] = "",
    train_side: Annotated[
        int, typer.Option("--train-side", min=2, max=30, help="Train on grid sides 2..N.")
    ] = _R.train_side,
    eval_max_side: Annotated[
        int,
        typer.Option(
            "--eval-max-side",
            min=2,
            max=30,
            help="Evaluate sides N+1..this in 3 buckets (and the training range).",
        ),
    ] = MAX_GRID_SIDE,
    n_eval: Annotated[
        int, typer.Option("--n-eval", min=1, max=100_000, help="Evaluation examples per bucket.")
    ] = _R.n_eval,
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated RoPE modes to train.")] = _csv(
        _R.modes
    ),
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = _csv(_R.seeds),
    tiny: Annotated[bool, typer.Option("--tiny", help="A seconds-long smoke variant.")] = False,
    out: OutDirOpt = Path("benchmarks/results"),
    tag: Annotated[str, typer.Option("--tag", help="Result file stem.")] = "rope_extension",
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """RoPE context extension on grid tasks (the trainer's model and tokenizer): none/linear/NTK/dynamic
    NTK/YaRN on grids larger than any seen in training, with and without a short fine-tune, for 1-D vs 2-D
    vs 2-D+1-D RoPE."""
    _threads(threads)
    modes_known = [m.value for m in RopeMode]
    from experiments.rope_extension import RopeStudy, run_study, table, tiny_study

    def _modes(text: str, opt: str) -> tuple[str, ...]:
        got = tuple(split_csv(text))
        bad = sorted(set(got) - set(modes_known))
        if bad or not got:
            raise TrainError(f"unknown {opt} {bad}", hint=f"choose from {modes_known}")
        return got

    mode_list = _modes(modes, "--modes")
    ft_modes = _modes(finetune_modes, "--finetune-modes") if finetune_modes else mode_list
    seed_list = tuple(_seeds(seeds))
    if tiny:
        study = tiny_study(seed_list[0])
        study.modes, study.seeds = mode_list, seed_list
        study.finetune_modes = ft_modes if finetune_modes else study.finetune_modes
    else:
        s, e = train_side, eval_max_side
        if not 2 <= s < e - 2:
            raise TrainError(f"need 2 <= --train-side < --eval-max-side - 2 (got {s}, {e})")
        cuts = [s + 1 + round(i * (e - s) / 3) for i in range(4)]
        buckets = {"train": (2, s), **{f"{a}-{b - 1}": (a, b - 1) for a, b in itertools.pairwise(cuts)}}
        study = RopeStudy(
            train_side=s,
            buckets=buckets,
            modes=mode_list,
            steps=steps,
            finetune_steps=finetune_steps,
            finetune_side=finetune_side,
            finetune_modes=ft_modes,
            n_eval=n_eval,
            seeds=seed_list,
        )
    n_ft = len([m for m in study.modes if m in study.finetune_modes]) * 5 if study.finetune_steps > 0 else 0
    with RichProgress(enabled=progress_enabled(json_out)) as prog:
        prog.start("stages", "rope study", total=(len(study.modes) + n_ft) * len(study.seeds))
        report = run_study(study, out, tag=tag, on_stage=lambda _s: prog.advance("stages"))
    if json_out:
        print_json(
            {
                "results": report["results"],
                "timings": report["timings"],
                "json": str(out / f"{tag}.json"),
                "plot": str(out / f"{tag}.png"),
            }
        )
        return
    from rich.table import Table

    for stage in dict.fromkeys(r["stage"] for r in report["results"]):
        t = Table(
            title=f"RoPE study, {stage}: exact / token acc / loss per grid-side bucket "
            f"(buckets {study.buckets}, seeds {list(study.seeds)})"
        )
        rows = table(report, stage)
        for col in rows[0]:
            t.add_column(col)
        for r in rows:
            t.add_row(*[str(v) for v in r.values()])
        console.print(t)
    console.print(f"results: {out / (tag + '.json')}  plot: {out / (tag + '.png')}")
