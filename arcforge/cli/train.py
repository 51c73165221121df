"""``arcforge train`` and ``arcforge eval``: thin wrappers over ``arcforge.train``.

Every setting is a field of the configs in ``arcforge.train.config``, the only place defaults live: each
option below is declared with ``cfg_opt(PATH, ...)`` (``arcforge.cli.options``), has no default of its own
(None = not given) and shows the field's default in ``--help``. The run's config is, in order: the field
defaults, then ``--config FILE`` (or the checkpoint's config with ``--resume``), then the options given on
the command line. torch is imported inside the commands (``arcforge --help`` stays fast; without the
``[train]`` extra the commands say what to install).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.cli.console import (
    console,
    err_console,
    fmt_log,
    need_train_extra,
    reports,
    resolve_data,
    run_progress,
)
from arcforge.cli.logprogress import Heartbeat
from arcforge.cli.options import (
    EVAL_SECTIONS,
    OPTION_FIELDS,
    TRAIN_SECTIONS,
    ConfigFileOpt,
    DataSpecOpt,
    DeviceOpt,
    Flag,
    JsonOpt,
    SeedOpt,
    SourceOpt,
    ThreadsOpt,
    cfg_opt,
    fields_of,
    given,
)
from arcforge.train.config import (
    Amp,
    ConfigError,
    EvalConfig,
    GrokfastKind,
    LossOn,
    Rank,
    RopeMode,
    RopeScaling,
    RunConfig,
    default_of,
    load_tables,
    set_paths,
)


def usage_error(e: ConfigError, source: str | None = None) -> typer.BadParameter:
    """A config error as typer's usage error (exit 2) naming the option, or the file it came from."""
    sections = (e.field.split(".")[0],)
    flag = next((f for f in OPTION_FIELDS if e.field in (fields_of(f, sections) or ())), None)
    if source or flag is None:
        return typer.BadParameter(
            f"{e.message}" + (f" (in {source})" if source else "") + (f"; {e.hint}" if e.hint else "")
        )
    return typer.BadParameter(e.detail + (f"; {e.hint}" if e.hint else ""), param_hint=f"'{flag}'")


# ------------------------------------------------------------------------------------------------ train


def _print_trained(res: dict) -> None:
    from arcforge.train.tokenize import MAX_GRID_SIDE

    threads = f"{res['threads']} thread{'s' if res['threads'] != 1 else ''}"
    console.print(
        f"trained {res['steps']} steps ({res['params']:,} params, {res['tokens']:,} tokens, "
        f"{res['elapsed_s']:.1f}s on {res['device']} x{res['world_size']}, "
        f"{threads}, {'bf16' if res['bf16'] else 'fp32'}); "
        f"examples dropped {res['dropped']}, truncated {res['truncated']}",
        markup=False,
        soft_wrap=True,
    )
    if res.get("left_out"):
        console.print(
            f"left out {res['left_out']} tasks with a grid side past {MAX_GRID_SIDE} cells (the "
            "trainer's frame tables and decoder stop there)",
            markup=False,
            soft_wrap=True,
        )
    if res["loss_first"] is not None:
        console.print(f"loss {res['loss_first']:.4f} -> {res['loss_last']:.4f}")
    if res["eval"]:
        console.print(fmt_log(res["eval"]))
    console.print(f"checkpoint: {res['checkpoint']}", markup=False, soft_wrap=True)


@reports(_print_trained)
def train_cmd(
    ctx: typer.Context,
    data: DataSpecOpt = None,
    out: Annotated[
        str | None,
        cfg_opt("train.out", "--out", "-o", help="Run folder: checkpoints, run.toml, metrics, tb."),
    ] = None,
    config: ConfigFileOpt = None,
    resume: Annotated[
        bool,
        Flag(
            "--resume", help="Continue the run in --out from its newest intact checkpoint, with its config."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        Flag(
            "--overwrite", help="Replace the earlier run in --out (only the files a run writes are removed)."
        ),
    ] = False,
    max_steps: Annotated[
        int | None, cfg_opt("train.max_steps", "--max-steps", help="Optimizer steps.")
    ] = None,
    seq_len: Annotated[
        int | None,
        cfg_opt(
            ("data.seq_len", "model.max_seq_len"), "--seq-len", help="Tokens per packed row (the context)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        cfg_opt("data.batch_size", "--batch-size", help="Packed rows per micro-batch per process."),
    ] = None,
    grad_accum: Annotated[
        int | None, cfg_opt("train.grad_accum", "--grad-accum", help="Micro-batches per optimizer step.")
    ] = None,
    lr: Annotated[float | None, cfg_opt("train.lr", "--lr", help="Peak learning rate (AdamW).")] = None,
    warmup: Annotated[
        int | None, cfg_opt("train.warmup_steps", "--warmup", help="Linear warmup steps (then cosine).")
    ] = None,
    min_lr_ratio: Annotated[
        float | None, cfg_opt("train.min_lr_ratio", "--min-lr-ratio", help="Final lr as a fraction of --lr.")
    ] = None,
    weight_decay: Annotated[
        float | None,
        cfg_opt("train.weight_decay", "--weight-decay", help="AdamW weight decay (matrices only)."),
    ] = None,
    grad_clip: Annotated[
        float | None, cfg_opt("train.grad_clip", "--grad-clip", help="Clip the global grad norm (0 = off).")
    ] = None,
    d_model: Annotated[
        int | None, cfg_opt("model.d_model", "--d-model", help="Model width (512 for ~25M params).")
    ] = None,
    layers: Annotated[int | None, cfg_opt("model.n_layers", "--layers", help="Transformer blocks.")] = None,
    heads: Annotated[
        int | None,
        cfg_opt("model.n_heads", "--heads", help="Attention heads (head dim divisible by 8 for 2d+1d)."),
    ] = None,
    rope: Annotated[RopeMode | None, cfg_opt("model.rope_mode", "--rope", help="RoPE positions.")] = None,
    rope_scaling: Annotated[
        RopeScaling | None, cfg_opt("model.rope_scaling", "--rope-scaling", help="RoPE context extension.")
    ] = None,
    rope_factor: Annotated[
        float | None, cfg_opt("model.rope_factor", "--rope-factor", help="Context extension factor.")
    ] = None,
    loss_on: Annotated[
        LossOn | None,
        cfg_opt("data.loss_on", "--loss-on", help="Targets: the test output only, or every output grid."),
    ] = None,
    source: SourceOpt = None,
    split: Annotated[
        list[str] | None,
        cfg_opt("data.splits", "--split", help="Training split (repeatable or comma-separated)."),
    ] = None,
    eval_split: Annotated[
        str | None, cfg_opt("train.eval_split", "--eval-split", help="Held-out split for in-training eval.")
    ] = None,
    eval_every: Annotated[
        int | None,
        cfg_opt("train.eval_every", "--eval-every", help="Eval every N steps (0 = at the end only)."),
    ] = None,
    eval_tasks: Annotated[
        int | None, cfg_opt("train.eval_tasks", "--eval-tasks", help="Tasks per in-training eval (0 = none).")
    ] = None,
    eval_votes: Annotated[
        int | None,
        cfg_opt("train.eval_votes", "--eval-votes", help="Transforms voted over in in-training eval."),
    ] = None,
    ckpt_every: Annotated[
        int | None,
        cfg_opt("train.ckpt_every", "--ckpt-every", help="Checkpoint every N steps (0 = at the end)."),
    ] = None,
    keep_checkpoints: Annotated[
        int | None,
        cfg_opt("train.keep_checkpoints", "--keep-checkpoints", help="Newest checkpoints kept (0 = all)."),
    ] = None,
    log_every: Annotated[
        int | None, cfg_opt("train.log_every", "--log-every", help="Log metrics every N steps.")
    ] = None,
    workers: Annotated[
        int | None, cfg_opt("train.num_workers", "--workers", help="DataLoader workers per process.")
    ] = None,
    threads: ThreadsOpt = None,
    chunk_tasks: Annotated[
        int | None, cfg_opt("data.chunk_tasks", "--chunk-tasks", help="Tasks shuffled and packed together.")
    ] = None,
    shuffle_tasks: Annotated[
        int | None,
        cfg_opt(
            "data.shuffle_tasks",
            "--shuffle-tasks",
            help="Tasks per shuffle window (the stored order is sorted by source and id; windows mix it).",
        ),
    ] = None,
    augment: Annotated[
        bool | None,
        cfg_opt(
            "data.augment.symmetries",
            "--augment/--no-augment",
            help="Random symmetry/colors/train order per task.",
        ),
    ] = None,
    keep_zero: Annotated[
        bool | None,
        cfg_opt("data.augment.keep_zero", "--keep-zero/--permute-zero", help="Color 0 is never permuted."),
    ] = None,
    grokfast: Annotated[
        GrokfastKind | None, cfg_opt("train.grokfast.kind", "--grokfast", help="Gradient filter.")
    ] = None,
    grokfast_alpha: Annotated[
        float | None, cfg_opt("train.grokfast.alpha", "--grokfast-alpha", help="Grokfast EMA momentum.")
    ] = None,
    grokfast_lamb: Annotated[
        float | None, cfg_opt("train.grokfast.lamb", "--grokfast-lamb", help="Grokfast amplification.")
    ] = None,
    grokfast_window: Annotated[
        int | None, cfg_opt("train.grokfast.window", "--grokfast-window", help="Grokfast MA window.")
    ] = None,
    device: DeviceOpt = None,
    compile_: Annotated[
        bool | None, cfg_opt("train.compile", "--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    amp: Annotated[
        Amp | None,
        cfg_opt(
            "train.amp",
            "--amp",
            help="bf16 autocast: auto = on CUDA, and on "
            "CPUs with native bf16 (AMX/AVX512-BF16) measured faster.",
        ),
    ] = None,
    tensorboard: Annotated[
        bool | None,
        cfg_opt(
            "train.tensorboard", "--tensorboard/--no-tensorboard", help="Write TensorBoard logs to RUN/tb."
        ),
    ] = None,
    seed: SeedOpt = None,
    json_: JsonOpt = False,
) -> dict | None:
    """Train a transformer on a built dataset (CPU, one GPU, or torchrun for several).

    Example: arcforge train --data arc-dataset --max-steps 300 --out runs/arc
    """
    run = train_config(ctx, config, resume=resume, overwrite=overwrite)
    need_train_extra("train")
    return run_training(run, resume=resume, overwrite=overwrite, json_=json_)


def train_config(ctx: typer.Context, config: Path | None, *, resume: bool, overwrite: bool) -> RunConfig:
    """The run's config from the options given to ``arcforge train`` (see ``_run_config``)."""
    if resume and overwrite:
        raise typer.BadParameter(
            "--resume continues the run in --out, --overwrite replaces it: pick one",
            param_hint="'--overwrite'",
        )
    values = given(ctx, TRAIN_SECTIONS)
    if "data.augment.symmetries" in values:  # --no-augment turns every augmentation off
        on = values["data.augment.symmetries"]
        values.update({"data.augment.colors": on, "data.augment.shuffle_train": on})
    return _run_config(values, config, resume)


class _LogLines:
    """``on_log`` of a training run: each record as a line on stderr (rank 0, without --json), which also
    tells the heartbeat that a line was written."""

    def __init__(self, show: bool, heartbeat: Heartbeat | None) -> None:
        self.show, self.heartbeat = show, heartbeat

    def __call__(self, rec: dict) -> None:
        if self.show:
            err_console.print(fmt_log(rec), highlight=False, markup=False, soft_wrap=True)
            if self.heartbeat is not None:
                self.heartbeat.mark()


def run_training(run: RunConfig, *, resume: bool, overwrite: bool, json_: bool) -> dict | None:
    """Train ``run``; the result of rank 0 (None on the other torchrun ranks)."""
    from arcforge.train.loop import train

    run.data.root = str(resolve_data(run.data.root))
    main = int(os.environ.get("RANK", "0")) == 0
    heartbeat = Heartbeat(fmt_log) if main and not err_console.is_terminal else None
    try:
        with run_progress(json_, main) as prog:
            res = train(
                run.model,
                run.data,
                run.train,
                resume=resume,
                overwrite=overwrite,
                progress=prog,
                on_log=_LogLines(main and not json_, heartbeat),
                on_step=heartbeat,
            )
    except KeyboardInterrupt as e:
        _interrupted(e, run, main)
    if not main:
        return None
    for line in res.get("skipped_checkpoints", []):
        err_console.print(f"warning: {line}; resumed from an older checkpoint", markup=False, soft_wrap=True)
    hist = res.pop("history")
    res["loss_first"] = hist[0]["loss"] if hist else None
    res["loss_last"] = hist[-1]["loss"] if hist else None
    return res


def _interrupted(e: KeyboardInterrupt, run: RunConfig, main: bool) -> None:
    """Ctrl-C: say where the run can continue from, exit 130."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping: a further Ctrl-C changes nothing
    if main:
        ck = getattr(e, "checkpoint", None)
        err_console.print(
            f"interrupted: checkpoint saved in {ck} (continue with --resume)"
            if ck
            else f"interrupted: stopped at once; {run.train.out} keeps its newest checkpoint, "
            "if any (continue with --resume)",
            markup=False,
            soft_wrap=True,
        )
    raise typer.Exit(130) from None


# ------------------------------------------------------------------------------------------------- eval


def _print_eval(res: dict) -> None:
    m, cfg = res["metrics"], res["eval_config"]
    if cfg["ttt"]["steps"]:
        console.print(
            f"before test-time training: exact-match {m['exact_match_before']:.4f}  "
            f"pass@2 {m['pass@2_before']:.4f}"
        )
    console.print(
        f"{m['scored']} test inputs of {res['tasks']} tasks ({cfg['split']}), {m['votes']} votes: "
        f"exact-match {m['exact_match']:.4f}  pass@2 {m['pass@2']:.4f}  "
        f"token accuracy {m['token_accuracy']:.4f}",
        soft_wrap=True,
    )
    console.print(f"submission: {res['submission']}", markup=False, soft_wrap=True)


@reports(_print_eval)
def eval_cmd(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            "-c",
            help="A run folder (its newest intact checkpoint) or one of its checkpoints/step-* folders.",
        ),
    ],
    data: DataSpecOpt = None,
    config: ConfigFileOpt = None,
    split: Annotated[str | None, cfg_opt("eval.split", "--split", help="Split to evaluate.")] = None,
    source: SourceOpt = None,
    limit: Annotated[
        int | None, cfg_opt("eval.limit", "--limit", help="Evaluate the first N tasks (0 = all).")
    ] = None,
    votes: Annotated[
        int | None, cfg_opt("eval.votes", "--votes", help="Transforms decoded and voted over for pass@2.")
    ] = None,
    submission: Annotated[
        Path | None,
        typer.Option(
            help="Where to write submission.json (default: RUN/eval/SPLIT/STEP/submission.json).",
            show_default=False,
        ),
    ] = None,
    rope_scaling: Annotated[
        RopeScaling | None,
        cfg_opt("eval.rope_scaling", "--rope-scaling", help="Override RoPE scaling at eval time."),
    ] = None,
    rope_factor: Annotated[
        float | None, cfg_opt("eval.rope_factor", "--rope-factor", help="Factor for --rope-scaling.")
    ] = None,
    seq_len: Annotated[
        int | None, cfg_opt("eval.seq_len", "--seq-len", help="Prompt budget (0 = the training --seq-len).")
    ] = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    seed: SeedOpt = None,
    rank: Annotated[
        Rank | None,
        cfg_opt(
            "eval.rank",
            "--rank",
            help="Rank voted candidates: poe (log-prob summed over every transform) or votes (count).",
        ),
    ] = None,
    batch_rows: Annotated[
        int | None,
        cfg_opt(
            "eval.batch_rows", "--batch-rows", help="Rows decoded as one batch (transforms x test inputs)."
        ),
    ] = None,
    amp: Annotated[
        Amp | None,
        cfg_opt(
            "eval.amp",
            "--amp",
            help="bf16 autocast while decoding: auto = on CUDA, and on a CPU with native "
            "bf16 measured faster; off = fp32.",
        ),
    ] = None,
    ttt_steps: Annotated[
        int | None,
        cfg_opt("eval.ttt.steps", "--ttt-steps", help="Test-time training steps per task (0 = off)."),
    ] = None,
    ttt_lr: Annotated[
        float | None, cfg_opt("eval.ttt.lr", "--ttt-lr", help="Test-time training learning rate.")
    ] = None,
    ttt_batch_size: Annotated[
        int | None,
        cfg_opt("eval.ttt.batch_size", "--ttt-batch-size", help="Leave-one-out examples per TTT step."),
    ] = None,
    ttt_lora_rank: Annotated[
        int | None,
        cfg_opt(
            "eval.ttt.lora_rank", "--ttt-lora-rank", help="LoRA adapter rank for TTT (0 = full fine-tuning)."
        ),
    ] = None,
    ttt_symmetries: Annotated[
        bool | None,
        cfg_opt(
            "eval.ttt.symmetries",
            "--ttt-symmetries/--no-ttt-symmetries",
            help="A random D8 symmetry per TTT "
            "example (off: the task's own orientation; a flip stays that flip).",
        ),
    ] = None,
    ttt_colors: Annotated[
        bool | None,
        cfg_opt(
            "eval.ttt.colors",
            "--ttt-colors/--no-ttt-colors",
            help="A random color permutation per TTT example (off: "
            "the task's own colors; a color map stays that map).",
        ),
    ] = None,
    ttt_base_attempt: Annotated[
        bool | None,
        cfg_opt(
            "eval.ttt.base_attempt",
            "--ttt-base-attempt/--no-ttt-base-attempt",
            help="Second attempt: the base model's best answer where it differs from the tuned model's.",
        ),
    ] = None,
    ttt_workers: Annotated[
        int | None,
        cfg_opt(
            "eval.ttt.workers",
            "--ttt-workers",
            help="Tasks "
            "fine-tuned at once, each in a thread with its share of "
            "--threads (0 = auto: up to 4 on a CPU, 1 on CUDA).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> dict:
    """Exact-match and pass@2 (augmentation voting, optional test-time training) of a checkpoint;
    writes a Kaggle submission.json.

    Example: arcforge eval --checkpoint runs/arc --data arc-dataset --limit 20 --votes 8
    """
    cfg = _eval_config(given(ctx, EVAL_SECTIONS), config)
    need_train_extra("eval")
    return run_evaluation(checkpoint, cfg, submission=submission, json_=json_)


def run_evaluation(checkpoint: Path, cfg: EvalConfig, *, submission: Path | None, json_: bool) -> dict:
    """Say what will be evaluated (stderr), evaluate, warn of skipped checkpoints; the result."""
    from arcforge.train.runner import eval_plan, run_eval

    root = resolve_data(cfg.data)
    plan = eval_plan(root, cfg)
    err_console.print(
        f"eval: {plan['tasks']} tasks of {cfg.split} x {cfg.votes} votes on "
        f"{cfg.device} (ETA shown after the first tasks; --limit and --votes shorten it)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if plan["left_out"]:
        ids = ", ".join(x["task"] for x in plan["left_out"][:3])
        err_console.print(
            f"left out {len(plan['left_out'])} of them ({ids}"
            f"{', ...' if len(plan['left_out']) > 3 else ''}): {plan['left_out'][0]['reason']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    with run_progress(json_) as prog:
        res = run_eval(checkpoint, root, cfg, submission=submission, progress=prog)
    for line in res.get("skipped_checkpoints", []):
        err_console.print(f"warning: {line}; used an older checkpoint", markup=False, soft_wrap=True)
    return res


def _run_config(values: dict[str, Any], config: Path | None, resume: bool) -> RunConfig:
    """Defaults <- --config FILE (or, with --resume, the run's run.toml) <- the options given. Values are
    checked once merged, so an option given on the command line replaces a bad one in the file."""
    tables: dict = {}
    source = str(config) if config is not None else None
    if source is None and resume:  # the run's own config: run.toml, else its latest checkpoint's
        out = Path(values.get("train.out", default_of("train.out")))
        latest = out / "latest"
        for f in [out / "run.toml"] + (
            [out / "checkpoints" / latest.read_text().strip() / "config.json"] if latest.is_file() else []
        ):
            if f.is_file():
                source = str(f)
                break
    try:
        if source is not None:
            tables = load_tables(Path(source))
            if source.endswith(".json"):  # a checkpoint's config.json also records step, version, params
                tables = {k: v for k, v in tables.items() if k in TRAIN_SECTIONS}
            else:
                RunConfig.check_keys(tables, source)
    except ConfigError as e:
        raise usage_error(e, source=source) from None
    try:
        return RunConfig.from_dict(set_paths(tables, values))
    except ConfigError as e:
        # a bad value given on the command line names its option; one from the file names the file
        raise usage_error(e, source=None if e.field in values else source) from None


def _eval_config(values: dict[str, Any], config: Path | None) -> EvalConfig:
    base: dict = {}
    if config is not None:
        try:
            tables = load_tables(config)
        except ConfigError as e:
            raise usage_error(e, source=str(config)) from None
        base = tables.get("eval", {})
    merged = set_paths(base, {p.split(".", 1)[1]: v for p, v in values.items()})  # "ttt.steps" nests
    try:
        return EvalConfig.from_dict(merged)
    except ConfigError as e:
        source = None if e.field in values or config is None else str(config)
        raise usage_error(e, source=source) from None
