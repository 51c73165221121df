"""``arcforge train`` and ``arcforge eval``: thin wrappers over ``arcforge.train``.

torch is imported inside the commands, so ``arcforge --help`` stays fast and the CLI module itself does
not pull torch in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from arcforge.cli.console import RichProgress, console, err_console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.options import JsonOpt, SeedOpt, split_csv

CsvOpt = Annotated[str | None, typer.Option(help="Comma-separated list (default: all).", show_default=False)]


def _csv(s: str | None) -> list[str] | None:
    return split_csv(s) if s else None


def _fmt_log(rec: dict) -> str:
    if "loss" in rec:
        eta = rec.get("eta_s", 0.0)
        return (f"step {rec['step']:>6}  loss {rec['loss']:.4f}  lr {rec['lr']:.2e}  "
                f"gnorm {rec['grad_norm']:.2f}  tok/s {rec.get('tokens_per_s', 0):,.0f}  eta {eta:,.0f}s")
    keys = ("exact_match", "pass@2", "token_accuracy", "loss")
    return f"eval  step {rec['step']:>6}  " + "  ".join(f"{k} {rec[f'eval/{k}']:.4f}" for k in keys)


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_cmd(
        data: Annotated[Path, typer.Option("--data", help="A built dataset folder (`arcforge build --out`).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: checkpoints, metrics, tb.")] = Path(
            "runs/arc"),
        max_steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
        seq_len: Annotated[int, typer.Option(help="Tokens per packed row (the context).")] = 2048,
        batch_size: Annotated[int, typer.Option(help="Packed rows per micro-batch per process.")] = 2,
        grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-3,
        warmup: Annotated[int, typer.Option(help="Linear warmup steps (then cosine).")] = 30,
        min_lr_ratio: Annotated[float, typer.Option(help="Final lr as a fraction of --lr.")] = 0.1,
        weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (matrices only).")] = 0.1,
        grad_clip: Annotated[float, typer.Option(help="Clip the global grad norm (0 = off).")] = 1.0,
        d_model: Annotated[int, typer.Option(help="Model width (laptop default; 512 for ~25M params).")] = 64,
        layers: Annotated[int, typer.Option(help="Transformer blocks.")] = 2,
        heads: Annotated[int, typer.Option(help="Attention heads (head dim divisible by 8 for 2d+1d).")] = 2,
        rope: Annotated[str, typer.Option(help="RoPE positions: 1d | 2d | 2d+1d.")] = "2d+1d",
        rope_scaling: Annotated[str, typer.Option(help="none | linear | ntk | dynamic_ntk | yarn.")] = "none",
        rope_factor: Annotated[float, typer.Option(help="Context extension factor.")] = 1.0,
        loss_on: Annotated[str, typer.Option(help="test (test output only) | outputs (every output grid).")] = "test",
        sources: CsvOpt = None,
        splits: Annotated[str, typer.Option(help="Training splits, comma-separated.")] = "training",
        eval_split: Annotated[str, typer.Option(help="Held-out split for in-training eval.")] = "evaluation",
        eval_every: Annotated[int, typer.Option(help="Eval every N steps (0 = at the end only).")] = 0,
        eval_tasks: Annotated[int, typer.Option(help="Tasks per in-training eval.")] = 16,
        eval_votes: Annotated[int, typer.Option(help="Transforms voted over in in-training eval.")] = 1,
        ckpt_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 100,
        log_every: Annotated[int, typer.Option(help="Log metrics every N steps.")] = 10,
        workers: Annotated[int, typer.Option(help="DataLoader workers per process.")] = 0,
        chunk_tasks: Annotated[int, typer.Option(help="Tasks shuffled and packed together.")] = 256,
        shuffle_tasks: Annotated[int, typer.Option(help="Tasks per shuffle window (the stored order is "
                                                   "sorted by source and id; windows mix it).")] = 16384,
        augment: Annotated[bool, typer.Option(help="Random symmetry/colors/train order per task.")] = True,
        keep_zero: Annotated[bool, typer.Option(help="Color 0 is never permuted.")] = True,
        grokfast: Annotated[str, typer.Option(help="Gradient filter: none | ema | ma.")] = "none",
        grokfast_alpha: Annotated[float, typer.Option(help="Grokfast EMA momentum.")] = 0.98,
        grokfast_lamb: Annotated[float, typer.Option(help="Grokfast amplification.")] = 2.0,
        grokfast_window: Annotated[int, typer.Option(help="Grokfast MA window.")] = 100,
        device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
        compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
        amp: Annotated[str, typer.Option(help="auto (bf16 autocast on CUDA) | bf16 (also on CPU: fast "
                                         "with AMX) | off.")] = "auto",
        tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs to RUN/tb.")] = True,
        resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN/latest.")] = False,
        seed: SeedOpt = 0,
        json_: JsonOpt = False,
    ) -> None:
        """Train a transformer on a built dataset (CPU, one GPU, or torchrun for several)."""
        from arcforge.train.augment import AugmentConfig
        from arcforge.train.data import DataConfig
        from arcforge.train.grokfast import GrokfastConfig
        from arcforge.train.loop import TrainConfig, train
        from arcforge.train.model import ModelConfig

        mcfg = ModelConfig(d_model=d_model, n_layers=layers, n_heads=heads, rope_mode=rope,
                           rope_scaling=rope_scaling, rope_factor=rope_factor, max_seq_len=seq_len)
        aug = AugmentConfig(keep_zero=keep_zero) if augment else AugmentConfig.none()
        dcfg = DataConfig(root=str(data), sources=_csv(sources), splits=_csv(splits), seq_len=seq_len,
                          batch_size=batch_size, chunk_tasks=chunk_tasks, shuffle_tasks=shuffle_tasks,
                          loss_on=loss_on, augment=aug, seed=seed)
        tcfg = TrainConfig(out=str(out), max_steps=max_steps, lr=lr, min_lr_ratio=min_lr_ratio, warmup_steps=warmup,
                           weight_decay=weight_decay, grad_clip=grad_clip, grad_accum=grad_accum,
                           log_every=log_every, eval_every=eval_every, eval_split=eval_split,
                           eval_tasks=eval_tasks, eval_votes=eval_votes, ckpt_every=ckpt_every, device=device,
                           compile=compile_, amp=amp, num_workers=workers, seed=seed, tensorboard=tensorboard,
                           grokfast=GrokfastConfig(kind=grokfast, alpha=grokfast_alpha, lamb=grokfast_lamb,
                                                   window=grokfast_window))
        main = int(os.environ.get("RANK", "0")) == 0

        def on_log(rec: dict) -> None:
            if main and not json_:
                err_console.print(_fmt_log(rec), highlight=False)

        try:
            with RichProgress(enabled=main and progress_enabled(json_)) as prog:
                res = train(mcfg, dcfg, tcfg, resume=resume, progress=prog, on_log=on_log)
        except KeyboardInterrupt:
            if main:
                err_console.print(f"interrupted: checkpoint saved under {out} (continue with --resume)")
            raise typer.Exit(130) from None
        if not main:
            return
        hist = res.pop("history")
        res["loss_first"] = hist[0]["loss"] if hist else None
        res["loss_last"] = hist[-1]["loss"] if hist else None
        if json_:
            print_json(res)
            return
        console.print(f"trained {res['steps']} steps ({res['params']:,} params, {res['tokens']:,} tokens, "
                      f"{res['elapsed_s']:.1f}s on {res['device']} x{res['world_size']}); "
                      f"examples dropped {res['dropped']}, truncated {res['truncated']}")
        if res["loss_first"] is not None:
            console.print(f"loss {res['loss_first']:.4f} -> {res['loss_last']:.4f}")
        if res["eval"]:
            console.print(_fmt_log(res["eval"]))
        console.print(f"checkpoint: {res['checkpoint']}")

    @app.command("eval")
    @handle_errors
    def eval_cmd(
        checkpoint: Annotated[Path, typer.Option("--checkpoint", help="A run folder or checkpoints/step-*.")],
        data: Annotated[Path, typer.Option("--data", help="A built dataset folder.")],
        split: Annotated[str, typer.Option(help="Split to evaluate.")] = "evaluation",
        sources: CsvOpt = None,
        limit: Annotated[int, typer.Option(help="Evaluate the first N tasks (0 = all).")] = 0,
        votes: Annotated[int, typer.Option(help="Transforms decoded and voted over for pass@2.")] = 8,
        submission: Annotated[Path | None, typer.Option(
            help="Where to write submission.json (default: next to the checkpoint).", show_default=False)] = None,
        rope_scaling: Annotated[str | None, typer.Option(help="Override RoPE scaling at eval time.",
                                                         show_default=False)] = None,
        rope_factor: Annotated[float, typer.Option(help="Factor for --rope-scaling.")] = 1.0,
        seq_len: Annotated[int, typer.Option(help="Prompt budget (0 = the training --seq-len).")] = 0,
        device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
        rank: Annotated[str, typer.Option(help="Rank voted candidates: poe (log-prob summed over every "
                                          "transform) | votes (count).")] = "poe",
        batch_rows: Annotated[int, typer.Option(help="Rows decoded together (transforms x tasks).")] = 64,
        ttt_steps: Annotated[int, typer.Option(help="Test-time training steps per task (0 = off).")] = 0,
        ttt_lr: Annotated[float, typer.Option(help="Test-time training learning rate.")] = 3e-4,
        ttt_batch_size: Annotated[int, typer.Option(help="Leave-one-out examples per TTT step.")] = 8,
        ttt_lora_rank: Annotated[int, typer.Option(help="LoRA rank for TTT (0 = full fine-tuning).")] = 0,
        seed: SeedOpt = 0,
        json_: JsonOpt = False,
    ) -> None:
        """Exact-match and pass@2 (augmentation voting, optional test-time training) of a checkpoint;
        writes a Kaggle submission.json."""
        from arcforge.train.evaluate import RANKS, EvalConfig
        from arcforge.train.runner import run_eval
        from arcforge.train.ttt import TTTConfig

        if rank not in RANKS:
            raise typer.BadParameter(f"use one of {', '.join(RANKS)}, not {rank!r}", param_hint="--rank")
        if min(votes, batch_rows, ttt_batch_size) < 1 or min(ttt_steps, ttt_lora_rank) < 0:
            raise typer.BadParameter("--votes, --batch-rows and --ttt-batch-size must be >= 1; --ttt-steps "
                                     "and --ttt-lora-rank >= 0", param_hint="--ttt-steps")
        ecfg = EvalConfig(votes=votes, rank=rank, batch_rows=batch_rows, seed=seed,
                          ttt=TTTConfig(steps=ttt_steps, lr=ttt_lr, batch_size=ttt_batch_size,
                                        lora_rank=ttt_lora_rank, seed=seed))

        with RichProgress(enabled=progress_enabled(json_)) as prog:
            res = run_eval(checkpoint, data, split=split, sources=_csv(sources), limit=limit, votes=votes,
                           submission=submission, rope_scaling=rope_scaling, rope_factor=rope_factor,
                           seq_len=seq_len, device=device, progress=prog, eval_cfg=ecfg)
        if json_:
            print_json(res)
            return
        m = res["metrics"]
        if ttt_steps:
            console.print(f"before test-time training: exact-match {m['exact_match_before']:.4f}  "
                          f"pass@2 {m['pass@2_before']:.4f}")
        console.print(f"{m['scored']} test inputs of {res['tasks']} tasks ({split}), {m['votes']} votes: "
                      f"exact-match {m['exact_match']:.4f}  pass@2 {m['pass@2']:.4f}  "
                      f"token accuracy {m['token_accuracy']:.4f}")
        console.print(f"submission: {res['submission']}")
