"""``arcforge demo``: the whole pipeline in one command (fetch -> build --exclude-eval -> train -> eval -> PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import console, err_console, print_json
from arcforge.cli.errors import handle_errors
from arcforge.cli.logprogress import Heartbeat
from arcforge.cli.options import JsonOpt, MirrorOpt, SeedOpt, split_csv
from arcforge.cli.train import _fmt_log, _progress, need_train_extra
from arcforge.demo.run import DemoConfig

_D = DemoConfig()  # the demo's defaults, shown in --help (they live in DemoConfig only)


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
            "demo-output"
        ),
        steps: Annotated[int | None, typer.Option(help="Training steps.", show_default=str(_D.steps))] = None,
        tasks: Annotated[int | None, typer.Option(help="Synthetic training tasks to generate.",
                                                  show_default=str(_D.tasks))] = None,
        eval_tasks: Annotated[int | None, typer.Option(help="Held-out synthetic tasks to score.",
                                                       show_default=str(_D.eval_tasks))] = None,
        families: Annotated[str | None, typer.Option(
            help="Comma-separated synthetic families to train and score (`easy` = all 8 easy ones).",
            show_default=",".join(_D.families))] = None,
        difficulty: Annotated[str | None, typer.Option(help="Synthetic difficulty: easy | medium | hard.",
                                                       show_default=_D.difficulty)] = None,
        votes: Annotated[int | None, typer.Option(help="Test-time augmentation votes at evaluation.",
                                                  show_default=str(_D.votes))] = None,
        ttt_steps: Annotated[int | None, typer.Option(help="Test-time training steps per scored task (0 = off).",
                                                      show_default=str(_D.ttt_steps))] = None,
        threads: Annotated[int | None, typer.Option(help="torch CPU threads (0: the CPUs free now, from "
                                                    "affinity and load average).",
                                                    show_default=str(_D.threads))] = None,
        mirror: MirrorOpt = None,
        seed: SeedOpt = 0,
        json_: JsonOpt = False,
    ) -> None:
        """Run fetch, build --exclude-eval, train, per-family eval and pictures, on CPU in a few minutes.

        Example: arcforge demo --out demo-output
        """
        from dataclasses import replace

        from arcforge.demo.run import run_demo
        from arcforge.synthetic import resolve_families

        need_train_extra("demo")
        given = {"steps": steps, "tasks": tasks, "eval_tasks": eval_tasks, "difficulty": difficulty,
                 "votes": votes, "ttt_steps": ttt_steps, "threads": threads}
        cfg = replace(DemoConfig(seed=seed), **{k: v for k, v in given.items() if v is not None})
        if families is not None:
            cfg = replace(cfg, families=resolve_families(split_csv(families)))
        from arcforge.train.device import use_free_cpus

        # counted before the demo's own build workers raise the load average: training then uses them too
        cfg = replace(cfg, threads=use_free_cpus(cfg.threads))
        heartbeat = None if err_console.is_terminal else Heartbeat(_fmt_log)
        with _progress(json_) as prog:
            res = run_demo(out, cfg, mirror=mirror, progress=prog, on_step=heartbeat)
        if json_:
            print_json(res.to_dict())
            return
        if res.notice:
            console.print(f"[yellow]notice:[/] {res.notice}")
        console.print(f"real sources used: {', '.join(res.fetched) or 'none (offline)'}")
        console.print(f"trained {cfg.steps} steps in {res.train_seconds:.0f} s ({res.s_per_step:.3f} s/step, "
                      f"final loss {res.final_loss}); scored in {res.eval_seconds:.0f} s")
        console.print(f"  {'family':20} {'pass@2 TTT':>10} {'no TTT':>8} {'exact TTT':>10} {'no TTT':>8} "
                      f"{'baseline':>8}")
        for fam, f in res.per_family.items():
            console.print(f"  {fam:20} {f['pass2_rate']:10.1%} {f['pass2_rate_no_ttt']:8.1%} "
                          f"{f['exact_match']:10.1%} {f['exact_match_no_ttt']:8.1%} {f['baseline_exact']:8.0%}"
                          f"{'  (easy)' if f['easy'] else ''}")
        console.print(f"pass@2 with voting: {res.pass2_all:.1%} with test-time training, {res.pass2_no_ttt:.1%} "
                      f"without; exact match {res.exact_all:.1%} / {res.exact_no_ttt:.1%} (baseline 'answer = "
                      f"test input': {res.baseline_exact:.1%}); total {res.total_seconds:.0f} s")
        console.print(f"outputs in {res.out_dir}: dataset {res.data_dir}, run {res.run_dir}, "
                      f"{res.loss_png}, {res.gallery_png}, {res.metrics_json}")
