"""``arcforge demo``: the whole pipeline in one command (fetch -> build --exclude-eval -> train -> eval ->
PNGs).

Every setting is a field of ``DemoConfig``, where its default lives: the options have none of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.cli.console import console, err_console, fmt_log, need_train_extra, reports, run_progress
from arcforge.cli.logprogress import Heartbeat
from arcforge.cli.options import (
    DEMO_SECTIONS,
    Difficulty,
    JsonOpt,
    MirrorOpt,
    SeedOpt,
    ThreadsOpt,
    cfg_opt,
    given,
    split_csv,
)


def demo_config(values: dict[str, Any]) -> Any:
    """The demo's ``DemoConfig``: its defaults, the options given (``{"demo.steps": 10, ...}``), and the
    CPUs free now when ``threads`` is 0."""
    from dataclasses import replace

    from arcforge.demo.run import DemoConfig
    from arcforge.synthetic import resolve_families
    from arcforge.train.device import use_free_cpus

    fields = {path.split(".", 1)[1]: v for path, v in values.items()}
    if "families" in fields:
        fields["families"] = resolve_families(split_csv(fields["families"]))
    cfg = DemoConfig(**fields)
    # counted before the demo's own build workers raise the load average: training then uses them too
    return replace(cfg, threads=use_free_cpus(cfg.threads))


def _real_line(real: dict) -> str:
    """The real-task figure next to the synthetic one (``arcforge.demo.real``), or why there is none."""
    if not real.get("tasks"):
        return f"real ARC: {real.get('why') or 'not scored'}"
    return (
        f"real ARC ({real['source']} {real['split']}, {real['selection']}, {real['test_inputs']} test "
        "inputs): "
        f"pass@2 {real['pass2']:.1%} with test-time training, {real['pass2_no_ttt']:.1%} without; "
        f"teacher-forced token accuracy {real['token_accuracy']:.1%}; scored in {real['seconds']:.0f} s"
    )


def _print_demo(res: Any) -> None:
    if res.notice:
        console.print(f"[yellow]notice:[/] {res.notice}")
    console.print(f"real sources used: {', '.join(res.fetched) or 'none (offline)'}")
    console.print(
        f"trained {res.config['steps']} steps in {res.train_seconds:.0f} s ({res.s_per_step:.3f} "
        f"s/step, final loss {res.final_loss}); scored in {res.eval_seconds:.0f} s"
    )
    console.print(
        f"  {'family':20} {'pass@2 TTT':>10} {'no TTT':>8} {'exact TTT':>10} {'no TTT':>8} {'baseline':>8}"
    )
    for fam, f in res.per_family.items():
        console.print(
            f"  {fam:20} {f['pass2_rate']:10.1%} {f['pass2_rate_no_ttt']:8.1%} "
            f"{f['exact_match']:10.1%} {f['exact_match_no_ttt']:8.1%} {f['baseline_exact']:8.0%}"
            f"{'  (easy)' if f['easy'] else ''}"
        )
    console.print(
        f"synthetic, pass@2 with voting: {res.pass2_all:.1%} with test-time training, "
        f"{res.pass2_no_ttt:.1%} without; exact match {res.exact_all:.1%} / {res.exact_no_ttt:.1%} "
        f"(baseline 'answer = test input': {res.baseline_exact:.1%}); total {res.total_seconds:.0f} s"
    )
    console.print(_real_line(res.real))
    console.print(
        f"outputs in {res.out_dir}: dataset {res.data_dir}, run {res.run_dir}, "
        f"{res.loss_png}, {res.gallery_png}, {res.metrics_json}"
    )


@reports(_print_demo)
def demo_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
        "demo-output"
    ),
    steps: Annotated[int | None, cfg_opt("demo.steps", "--steps", help="Training steps.")] = None,
    tasks: Annotated[
        int | None, cfg_opt("demo.tasks", "--tasks", help="Synthetic training tasks to generate.")
    ] = None,
    eval_tasks: Annotated[
        int | None, cfg_opt("demo.eval_tasks", "--eval-tasks", help="Held-out synthetic tasks to score.")
    ] = None,
    families: Annotated[
        str | None,
        cfg_opt(
            "demo.families",
            "--families",
            help="Comma-separated synthetic families to train and score (`easy` = all 8 easy ones).",
        ),
    ] = None,
    difficulty: Annotated[
        Difficulty | None,
        cfg_opt(
            "demo.difficulty",
            "--difficulty",
            help="Synthetic difficulty: grid sizes, objects and colors of the tasks.",
        ),
    ] = None,
    votes: Annotated[
        int | None, cfg_opt("demo.votes", "--votes", help="Test-time augmentation votes at evaluation.")
    ] = None,
    ttt_steps: Annotated[
        int | None,
        cfg_opt("demo.ttt_steps", "--ttt-steps", help="Test-time training steps per scored task (0 = off)."),
    ] = None,
    threads: ThreadsOpt = None,
    mirror: MirrorOpt = None,
    seed: SeedOpt = None,
    json_: JsonOpt = False,
) -> Any:
    """Run fetch, build --exclude-eval, train, per-family eval and pictures, on CPU in a few minutes.

    Example: arcforge demo --out demo-output
    """
    from arcforge.demo.run import run_demo

    need_train_extra("demo")
    cfg = demo_config(given(ctx, DEMO_SECTIONS))
    heartbeat = None if err_console.is_terminal else Heartbeat(fmt_log)
    with run_progress(json_) as prog:
        return run_demo(out, cfg, mirror=mirror, progress=prog, on_step=heartbeat)
