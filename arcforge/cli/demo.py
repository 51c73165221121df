"""``arcforge demo``: the whole pipeline in one command (fetch -> build --exclude-eval -> train -> eval -> PNGs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import RichProgress, console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import JsonOpt, MirrorOpt, SeedOpt


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
            "demo-output"
        ),
        steps: Annotated[int, typer.Option(help="Training steps.")] = 600,
        tasks: Annotated[int, typer.Option(help="Synthetic training tasks to generate.")] = 4000,
        eval_tasks: Annotated[int, typer.Option(help="Held-out synthetic tasks to score.")] = 240,
        mirror: MirrorOpt = None,
        seed: SeedOpt = 0,
        json_: JsonOpt = False,
    ) -> None:
        """Run fetch, build --exclude-eval, train, per-family eval and pictures, on CPU in a few minutes."""
        from arcforge.demo import run_demo

        with RichProgress(enabled=progress_enabled(json_)) as prog:
            res = run_demo(out, steps=steps, tasks=tasks, eval_tasks=eval_tasks, seed=seed, mirror=mirror,
                           progress=prog)
        if json_:
            print_json(res.to_dict())
            return
        if res.notice:
            console.print(f"[yellow]notice:[/] {res.notice}")
        console.print(f"real sources used: {', '.join(res.fetched) or 'none (offline)'}")
        for fam, f in res.per_family.items():
            console.print(f"  {fam:20} exact-match {f['exact_match']:.0%} ({f['exact']}/{f['tasks']})"
                          f"{'  [easy]' if f['easy'] else ''}")
        console.print(f"exact-match: easy families {res.exact_easy:.1%}, all families {res.exact_all:.1%}")
        console.print(f"outputs in {res.out_dir}: dataset {res.data_dir}, run {res.run_dir}, "
                      f"{res.loss_png}, {res.gallery_png}, {res.metrics_json}")
