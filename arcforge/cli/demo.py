"""``arcforge demo``: the whole pipeline in one command (fetch -> build --exclude-eval -> train -> eval -> PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import RichProgress, console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import JsonOpt, MirrorOpt, SeedOpt, split_csv


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
            "demo-output"
        ),
        steps: Annotated[int | None, typer.Option(help="Training steps.", show_default="2000")] = None,
        tasks: Annotated[int | None, typer.Option(help="Synthetic training tasks to generate.",
                                                  show_default="6000")] = None,
        eval_tasks: Annotated[int | None, typer.Option(help="Held-out synthetic tasks to score.",
                                                       show_default="200")] = None,
        families: Annotated[str | None, typer.Option(
            help="Comma-separated synthetic families to train and score (`easy` = all 8 easy ones).",
            show_default="border,color_map,flip,gravity")] = None,
        difficulty: Annotated[str | None, typer.Option(help="Synthetic difficulty: easy | medium | hard.",
                                                       show_default="easy")] = None,
        votes: Annotated[int | None, typer.Option(help="Test-time augmentation votes at evaluation.",
                                                  show_default="1")] = None,
        threads: Annotated[int, typer.Option(help="torch CPU threads (0: one per core). On a busy machine "
                                             "use fewer: oversubscribed threads slow training 10x.")] = 0,
        mirror: MirrorOpt = None,
        seed: SeedOpt = 0,
        json_: JsonOpt = False,
    ) -> None:
        """Run fetch, build --exclude-eval, train, per-family eval and pictures, on CPU in a few minutes."""
        from dataclasses import replace

        from arcforge.demo import DemoConfig, run_demo
        from arcforge.synthetic import resolve_families

        given = {"steps": steps, "tasks": tasks, "eval_tasks": eval_tasks, "difficulty": difficulty,
                 "votes": votes}
        cfg = replace(DemoConfig(seed=seed, threads=threads), **{k: v for k, v in given.items() if v is not None})
        if families is not None:
            cfg = replace(cfg, families=resolve_families(split_csv(families)))
        with RichProgress(enabled=progress_enabled(json_)) as prog:
            res = run_demo(out, cfg, mirror=mirror, progress=prog)
        if json_:
            print_json(res.to_dict())
            return
        if res.notice:
            console.print(f"[yellow]notice:[/] {res.notice}")
        console.print(f"real sources used: {', '.join(res.fetched) or 'none (offline)'}")
        console.print(f"trained {cfg.steps} steps in {res.train_seconds:.0f} s (final loss {res.final_loss})")
        for fam, f in res.per_family.items():
            console.print(f"  {fam:20} exact-match {f['exact_match']:6.1%} ({f['exact']}/{f['tasks']})"
                          f"   baseline {f['baseline_exact']:.0%}{'  (easy)' if f['easy'] else ''}")
        console.print(f"exact-match: easy families {res.exact_easy:.1%}, all families {res.exact_all:.1%} "
                      f"(baseline 'answer = test input': {res.baseline_exact:.1%})")
        console.print(f"outputs in {res.out_dir}: dataset {res.data_dir}, run {res.run_dir}, "
                      f"{res.loss_png}, {res.gallery_png}, {res.metrics_json}")
