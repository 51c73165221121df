"""``arcforge train`` and ``arcforge eval``: thin wrappers over ``arcforge.train``.

Every setting is a field of the configs in ``arcforge.train.config``, the only place defaults live: each
option below is declared with ``cfg_opt(PATH, ...)``, has no default of its own (None = not given) and
shows the field's default in ``--help``. The run's config is, in order: the field defaults, then
``--config FILE`` (or the checkpoint's config with ``--resume``), then the options given on the command
line. torch is imported inside the commands (``arcforge --help`` stays fast; without the ``[train]``
extra the commands say what to install).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.cli.console import RichProgress, console, err_console, print_json, progress_enabled
from arcforge.cli.errors import handle_errors
from arcforge.cli.logprogress import Heartbeat, PlainProgress, fmt_duration
from arcforge.cli.options import Flag, JsonOpt, split_csv
from arcforge.errors import ArcforgeError
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

# option flag -> the config field(s) it sets, one tuple per command declaring it (filled by cfg_opt)
OPTION_FIELDS: dict[str, list[tuple[str, ...]]] = {}
TRAIN_SECTIONS = ("model", "data", "train")
EVAL_SECTIONS = ("eval",)


def cfg_opt(paths: str | tuple[str, ...], *decls: str, help: str, **kw: Any) -> Any:
    """A typer option for config field(s) ``paths`` ("section.field"): default None (= not given), the
    field's default shown in --help."""
    paths = (paths,) if isinstance(paths, str) else paths
    OPTION_FIELDS.setdefault(decls[0].split("/")[0], []).append(paths)
    d = default_of(paths[0])
    shown = ",".join(d) if isinstance(d, list) else ("all" if d is None else getattr(d, "value", d))
    if isinstance(d, bool):
        shown = decls[0].split("/")[0 if d else -1].lstrip("-")
        kw.setdefault("metavar", "")  # a flag takes no value: no <bool> column in --help
    return typer.Option(*decls, help=help, show_default=str(shown), **kw)


def fields_of(flag: str, sections: tuple[str, ...]) -> tuple[str, ...] | None:
    """The config field(s) ``flag`` sets in the command whose configs are ``sections``."""
    return next((p for p in OPTION_FIELDS.get(flag, []) if p[0].split(".")[0] in sections), None)


def given(ctx: typer.Context, sections: tuple[str, ...]) -> dict[str, Any]:
    """``{field path: value}`` of the config options given (on the command line or by env)."""
    out: dict[str, Any] = {}
    for p in ctx.command.params:
        paths = fields_of(p.opts[0], sections) if p.opts else None
        value = ctx.params.get(p.name or "")
        if isinstance(value, list | tuple):  # repeatable options also take comma lists; none given: []
            value = [x for v in value for x in split_csv(str(v))] or None
        if paths and value is not None:
            for path in paths:
                out[path] = getattr(value, "value", value)
    return out


def usage_error(e: ConfigError, source: str | None = None) -> typer.BadParameter:
    """A config error as typer's usage error (exit 2) naming the option, or the file it came from."""
    sections = (e.field.split(".")[0],)
    flag = next((f for f in OPTION_FIELDS if e.field in (fields_of(f, sections) or ())), None)
    if source or flag is None:
        return typer.BadParameter(f"{e.message}" + (f" (in {source})" if source else "")
                                  + (f"; {e.hint}" if e.hint else ""))
    return typer.BadParameter(e.detail + (f"; {e.hint}" if e.hint else ""), param_hint=f"'{flag}'")


def need_train_extra(command: str) -> None:
    """torch and safetensors come with the ``[train]`` extra; say so instead of an ImportError."""
    missing = []
    for mod in ("torch", "safetensors"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ArcforgeError(f"`arcforge {command}` needs {' and '.join(missing)}, which the base install "
                            "leaves out", hint="pip install 'arcforge[train]'")


def _fmt_log(rec: dict) -> str:
    if "loss" in rec:
        eta = rec.get("eta_s", 0.0)
        return (f"step {rec['step']:>6}  loss {rec['loss']:.4f}  lr {rec['lr']:.2e}  "
                f"gnorm {rec['grad_norm']:.2f}  tok/s {rec.get('tokens_per_s', 0):,.0f}  "
                f"s/step {rec.get('s_per_step', 0):.3f}  eta {fmt_duration(eta)}")
    keys = ("exact_match", "pass@2", "token_accuracy", "loss")
    return f"eval  step {rec['step']:>6}  " + "  ".join(f"{k} {rec[f'eval/{k}']:.4f}" for k in keys)


def _resolve_data(spec: str) -> Path:
    from arcforge.hub.data import resolve_data

    # HF_ENDPOINT (a mirror, a private Hub) is read now, not only when huggingface_hub was imported
    return resolve_data(spec, endpoint=os.environ.get("HF_ENDPOINT") or None)


def _progress(json_: bool, main: bool = True) -> Any:
    """rich bars on a terminal; plain log lines every 30 s otherwise (also with --json: they go to stderr)."""
    if not main:
        return RichProgress(enabled=False)
    if err_console.is_terminal:
        return RichProgress(enabled=progress_enabled(json_))
    return PlainProgress()


ConfigFileOpt = Annotated[Path | None, typer.Option(
    "--config", help="A config file (run.toml of an earlier run, or a checkpoint's config.json); options "
    "given on the command line override it.", show_default=False)]
DataOpt = Annotated[str | None, cfg_opt("data.root", "--data", "-d", help="A built dataset folder (the --out of "
                                        "`arcforge build`), ORG/NAME(@REV) or hf://datasets/ORG/NAME(@REV).")]
SourceOpt = Annotated[list[str] | None, cfg_opt("data.sources", "--source", "-s", help="Source to use "
                                                "(repeatable or comma-separated; default: all).")]


def register(app: typer.Typer) -> None:
    @app.command("train")
    @handle_errors
    def train_cmd(
        ctx: typer.Context,
        data: DataOpt = None,
        out: Annotated[str | None, cfg_opt("train.out", "--out", "-o",
                                           help="Run folder: checkpoints, run.toml, metrics, tb.")] = None,
        config: ConfigFileOpt = None,
        resume: Annotated[bool, Flag("--resume", help="Continue the run in --out from its newest "
                                             "intact checkpoint, with its config.")] = False,
        overwrite: Annotated[bool, Flag("--overwrite", help="Replace the earlier run in --out (only "
                                                "the files a run writes are removed).")] = False,
        max_steps: Annotated[int | None, cfg_opt("train.max_steps", "--max-steps", help="Optimizer steps.")] = None,
        seq_len: Annotated[int | None, cfg_opt(("data.seq_len", "model.max_seq_len"), "--seq-len",
                                               help="Tokens per packed row (the context).")] = None,
        batch_size: Annotated[int | None, cfg_opt("data.batch_size", "--batch-size",
                                                  help="Packed rows per micro-batch per process.")] = None,
        grad_accum: Annotated[int | None, cfg_opt("train.grad_accum", "--grad-accum",
                                                  help="Micro-batches per optimizer step.")] = None,
        lr: Annotated[float | None, cfg_opt("train.lr", "--lr", help="Peak learning rate (AdamW).")] = None,
        warmup: Annotated[int | None, cfg_opt("train.warmup_steps", "--warmup",
                                              help="Linear warmup steps (then cosine).")] = None,
        min_lr_ratio: Annotated[float | None, cfg_opt("train.min_lr_ratio", "--min-lr-ratio",
                                                      help="Final lr as a fraction of --lr.")] = None,
        weight_decay: Annotated[float | None, cfg_opt("train.weight_decay", "--weight-decay",
                                                      help="AdamW weight decay (matrices only).")] = None,
        grad_clip: Annotated[float | None, cfg_opt("train.grad_clip", "--grad-clip",
                                                   help="Clip the global grad norm (0 = off).")] = None,
        d_model: Annotated[int | None, cfg_opt("model.d_model", "--d-model",
                                               help="Model width (512 for ~25M params).")] = None,
        layers: Annotated[int | None, cfg_opt("model.n_layers", "--layers", help="Transformer blocks.")] = None,
        heads: Annotated[int | None, cfg_opt("model.n_heads", "--heads", help="Attention heads (head dim "
                                             "divisible by 8 for 2d+1d).")] = None,
        rope: Annotated[RopeMode | None, cfg_opt("model.rope_mode", "--rope", help="RoPE positions.")] = None,
        rope_scaling: Annotated[RopeScaling | None, cfg_opt("model.rope_scaling", "--rope-scaling",
                                                            help="RoPE context extension.")] = None,
        rope_factor: Annotated[float | None, cfg_opt("model.rope_factor", "--rope-factor",
                                                     help="Context extension factor.")] = None,
        loss_on: Annotated[LossOn | None, cfg_opt("data.loss_on", "--loss-on", help="Targets: the test output "
                                                  "only, or every output grid.")] = None,
        source: SourceOpt = None,
        split: Annotated[list[str] | None, cfg_opt("data.splits", "--split", help="Training split "
                                                   "(repeatable or comma-separated).")] = None,
        eval_split: Annotated[str | None, cfg_opt("train.eval_split", "--eval-split",
                                                  help="Held-out split for in-training eval.")] = None,
        eval_every: Annotated[int | None, cfg_opt("train.eval_every", "--eval-every",
                                                  help="Eval every N steps (0 = at the end only).")] = None,
        eval_tasks: Annotated[int | None, cfg_opt("train.eval_tasks", "--eval-tasks",
                                                  help="Tasks per in-training eval (0 = none).")] = None,
        eval_votes: Annotated[int | None, cfg_opt("train.eval_votes", "--eval-votes",
                                                  help="Transforms voted over in in-training eval.")] = None,
        ckpt_every: Annotated[int | None, cfg_opt("train.ckpt_every", "--ckpt-every",
                                                  help="Checkpoint every N steps (0 = at the end).")] = None,
        keep_checkpoints: Annotated[int | None, cfg_opt("train.keep_checkpoints", "--keep-checkpoints",
                                                        help="Newest checkpoints kept (0 = all).")] = None,
        log_every: Annotated[int | None, cfg_opt("train.log_every", "--log-every",
                                                 help="Log metrics every N steps.")] = None,
        workers: Annotated[int | None, cfg_opt("train.num_workers", "--workers",
                                               help="DataLoader workers per process.")] = None,
        threads: Annotated[int | None, cfg_opt("train.threads", "--threads", help="torch CPU threads (0: the "
                                               "CPUs free now, from affinity and load).")] = None,
        chunk_tasks: Annotated[int | None, cfg_opt("data.chunk_tasks", "--chunk-tasks",
                                                   help="Tasks shuffled and packed together.")] = None,
        shuffle_tasks: Annotated[int | None, cfg_opt("data.shuffle_tasks", "--shuffle-tasks", help="Tasks per "
                                                     "shuffle window (the stored order is sorted by source "
                                                     "and id; windows mix it).")] = None,
        augment: Annotated[bool | None, cfg_opt("data.augment.symmetries", "--augment/--no-augment",
                                                help="Random symmetry/colors/train order per task.")] = None,
        keep_zero: Annotated[bool | None, cfg_opt("data.augment.keep_zero", "--keep-zero/--permute-zero",
                                                  help="Color 0 is never permuted.")] = None,
        grokfast: Annotated[GrokfastKind | None, cfg_opt("train.grokfast.kind", "--grokfast",
                                                         help="Gradient filter.")] = None,
        grokfast_alpha: Annotated[float | None, cfg_opt("train.grokfast.alpha", "--grokfast-alpha",
                                                        help="Grokfast EMA momentum.")] = None,
        grokfast_lamb: Annotated[float | None, cfg_opt("train.grokfast.lamb", "--grokfast-lamb",
                                                       help="Grokfast amplification.")] = None,
        grokfast_window: Annotated[int | None, cfg_opt("train.grokfast.window", "--grokfast-window",
                                                       help="Grokfast MA window.")] = None,
        device: Annotated[str | None, cfg_opt("train.device", "--device", help="auto | cpu | cuda | cuda:N.")]
        = None,
        compile_: Annotated[bool | None, cfg_opt("train.compile", "--compile/--no-compile",
                                                 help="torch.compile the model.")] = None,
        amp: Annotated[Amp | None, cfg_opt("train.amp", "--amp", help="bf16 autocast: auto = on CUDA, and on "
                                           "CPUs with native bf16 (AMX/AVX512-BF16) measured faster.")] = None,
        tensorboard: Annotated[bool | None, cfg_opt("train.tensorboard", "--tensorboard/--no-tensorboard",
                                                    help="Write TensorBoard logs to RUN/tb.")] = None,
        seed: Annotated[int | None, cfg_opt(("train.seed", "data.seed"), "--seed",
                                            help="Random seed (every random choice derives from it).")] = None,
        json_: JsonOpt = False,
    ) -> None:
        """Train a transformer on a built dataset (CPU, one GPU, or torchrun for several).

        Example: arcforge train --data arc-dataset --max-steps 300 --out runs/arc
        """
        if resume and overwrite:
            raise typer.BadParameter("--resume continues the run in --out, --overwrite replaces it: pick one",
                                     param_hint="'--overwrite'")
        values = given(ctx, TRAIN_SECTIONS)
        if "data.augment.symmetries" in values:  # --no-augment turns every augmentation off
            on = values["data.augment.symmetries"]
            values.update({"data.augment.colors": on, "data.augment.shuffle_train": on})
        run = _run_config(values, config, resume)
        need_train_extra("train")
        from arcforge.train.loop import train
        from arcforge.train.tokenize import MAX_GRID_SIDE

        run.data.root = str(_resolve_data(run.data.root))
        main = int(os.environ.get("RANK", "0")) == 0
        heartbeat = Heartbeat(_fmt_log) if main and not err_console.is_terminal else None

        def on_log(rec: dict) -> None:
            if main and not json_:
                err_console.print(_fmt_log(rec), highlight=False, markup=False, soft_wrap=True)
                if heartbeat is not None:
                    heartbeat.mark()

        try:
            with _progress(json_, main) as prog:
                res = train(run.model, run.data, run.train, resume=resume, overwrite=overwrite, progress=prog,
                            on_log=on_log, on_step=heartbeat)
        except KeyboardInterrupt as e:
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping: a further Ctrl-C changes nothing
            if main:
                ck = getattr(e, "checkpoint", None)
                err_console.print(f"interrupted: checkpoint saved in {ck} (continue with --resume)" if ck else
                                  f"interrupted: stopped at once; {run.train.out} keeps its newest checkpoint, "
                                  "if any (continue with --resume)", markup=False, soft_wrap=True)
            raise typer.Exit(130) from None
        if not main:
            return
        for line in res.get("skipped_checkpoints", []):
            err_console.print(f"warning: {line}; resumed from an older checkpoint", markup=False, soft_wrap=True)
        hist = res.pop("history")
        res["loss_first"] = hist[0]["loss"] if hist else None
        res["loss_last"] = hist[-1]["loss"] if hist else None
        if json_:
            print_json(res)
            return
        console.print(f"trained {res['steps']} steps ({res['params']:,} params, {res['tokens']:,} tokens, "
                      f"{res['elapsed_s']:.1f}s on {res['device']} x{res['world_size']}, "
                      f"{res['threads']} thread{'s' if res['threads'] != 1 else ''}, {'bf16' if res['bf16'] else 'fp32'}); "
                      f"examples dropped {res['dropped']}, truncated {res['truncated']}", markup=False, soft_wrap=True)
        if res.get("left_out"):
            console.print(f"left out {res['left_out']} tasks with a grid side past {MAX_GRID_SIDE} cells (the "
                          "trainer's frame tables and decoder stop there)", markup=False, soft_wrap=True)
        if res["loss_first"] is not None:
            console.print(f"loss {res['loss_first']:.4f} -> {res['loss_last']:.4f}")
        if res["eval"]:
            console.print(_fmt_log(res["eval"]))
        console.print(f"checkpoint: {res['checkpoint']}", markup=False, soft_wrap=True)

    @app.command("eval")
    @handle_errors
    def eval_cmd(
        ctx: typer.Context,
        checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A run folder (its newest intact "
                                                 "checkpoint) or one of its checkpoints/step-* folders.")],
        data: Annotated[str | None, cfg_opt("eval.data", "--data", "-d", help="A built dataset folder, "
                                            "ORG/NAME(@REV) or hf://datasets/ORG/NAME(@REV).")] = None,
        config: ConfigFileOpt = None,
        split: Annotated[str | None, cfg_opt("eval.split", "--split", help="Split to evaluate.")] = None,
        source: Annotated[list[str] | None, cfg_opt("eval.sources", "--source", "-s", help="Source to use "
                                                    "(repeatable or comma-separated; default: all).")] = None,
        limit: Annotated[int | None, cfg_opt("eval.limit", "--limit",
                                             help="Evaluate the first N tasks (0 = all).")] = None,
        votes: Annotated[int | None, cfg_opt("eval.votes", "--votes", help="Transforms decoded and voted "
                                             "over for pass@2.")] = None,
        submission: Annotated[Path | None, typer.Option(
            help="Where to write submission.json (default: RUN/eval/SPLIT/STEP/submission.json).",
            show_default=False)] = None,
        rope_scaling: Annotated[RopeScaling | None, cfg_opt("eval.rope_scaling", "--rope-scaling",
                                                            help="Override RoPE scaling at eval time.")] = None,
        rope_factor: Annotated[float | None, cfg_opt("eval.rope_factor", "--rope-factor",
                                                     help="Factor for --rope-scaling.")] = None,
        seq_len: Annotated[int | None, cfg_opt("eval.seq_len", "--seq-len",
                                               help="Prompt budget (0 = the training --seq-len).")] = None,
        device: Annotated[str | None, cfg_opt("eval.device", "--device", help="auto | cpu | cuda.")] = None,
        threads: Annotated[int | None, cfg_opt("eval.threads", "--threads", help="torch CPU threads (0: the "
                                               "CPUs free now).")] = None,
        seed: Annotated[int | None, cfg_opt("eval.seed", "--seed", help="Seed of the voting transforms and "
                                            "of test-time training.")] = None,
        rank: Annotated[Rank | None, cfg_opt("eval.rank", "--rank", help="Rank voted candidates: poe (log-prob "
                                             "summed over every transform) or votes (count).")] = None,
        batch_rows: Annotated[int | None, cfg_opt("eval.batch_rows", "--batch-rows", help="Rows decoded as one "
                                                  "batch (transforms x test inputs).")] = None,
        amp: Annotated[Amp | None, cfg_opt("eval.amp", "--amp", help="bf16 autocast while decoding: auto = on "
                                           "CUDA, and on a CPU with native bf16 measured faster; off = fp32.")] = None,
        ttt_steps: Annotated[int | None, cfg_opt("eval.ttt.steps", "--ttt-steps", help="Test-time training "
                                                 "steps per task (0 = off).")] = None,
        ttt_lr: Annotated[float | None, cfg_opt("eval.ttt.lr", "--ttt-lr",
                                                help="Test-time training learning rate.")] = None,
        ttt_batch_size: Annotated[int | None, cfg_opt("eval.ttt.batch_size", "--ttt-batch-size",
                                                      help="Leave-one-out examples per TTT step.")] = None,
        ttt_lora_rank: Annotated[int | None, cfg_opt("eval.ttt.lora_rank", "--ttt-lora-rank", help="LoRA "
                                                     "adapter rank for TTT (0 = full fine-tuning).")] = None,
        ttt_symmetries: Annotated[bool | None, cfg_opt("eval.ttt.symmetries", "--ttt-symmetries/--no-ttt-symmetries",
                                                       help="A random D8 symmetry per TTT example (off: the "
                                                       "task's own orientation; a flip stays that flip).")] = None,
        ttt_colors: Annotated[bool | None, cfg_opt("eval.ttt.colors", "--ttt-colors/--no-ttt-colors",
                                                   help="A random color permutation per TTT example (off: "
                                                   "the task's own colors; a color map stays that map).")] = None,
        ttt_base_attempt: Annotated[bool | None, cfg_opt("eval.ttt.base_attempt",
                                                         "--ttt-base-attempt/--no-ttt-base-attempt",
                                                         help="Second attempt: the base model's best answer "
                                                         "where it differs from the tuned model's.")] = None,
        ttt_workers: Annotated[int | None, cfg_opt("eval.ttt.workers", "--ttt-workers", help="Tasks "
                                                   "fine-tuned at once, each in a thread with its share of "
                                                   "--threads (0 = auto: up to 4 on a CPU, 1 on CUDA).")] = None,
        json_: JsonOpt = False,
    ) -> None:
        """Exact-match and pass@2 (augmentation voting, optional test-time training) of a checkpoint;
        writes a Kaggle submission.json."""
        cfg = _eval_config(given(ctx, EVAL_SECTIONS), config)
        need_train_extra("eval")
        from arcforge.train.runner import eval_plan, run_eval

        root = _resolve_data(cfg.data)
        plan = eval_plan(root, cfg)
        err_console.print(f"eval: {plan['tasks']} tasks of {cfg.split} x {cfg.votes} votes on "
                          f"{cfg.device} (ETA shown after the first tasks; --limit and --votes shorten it)",
                          markup=False, highlight=False, soft_wrap=True)
        if plan["left_out"]:
            ids = ", ".join(x["task"] for x in plan["left_out"][:3])
            err_console.print(f"left out {len(plan['left_out'])} of them ({ids}"
                              f"{', ...' if len(plan['left_out']) > 3 else ''}): {plan['left_out'][0]['reason']}",
                              markup=False, highlight=False, soft_wrap=True)
        with _progress(json_) as prog:
            res = run_eval(checkpoint, root, cfg, submission=submission, progress=prog)
        for line in res.get("skipped_checkpoints", []):
            err_console.print(f"warning: {line}; used an older checkpoint", markup=False, soft_wrap=True)
        if json_:
            print_json(res)
            return
        m = res["metrics"]
        if cfg.ttt.steps:
            console.print(f"before test-time training: exact-match {m['exact_match_before']:.4f}  "
                          f"pass@2 {m['pass@2_before']:.4f}")
        console.print(f"{m['scored']} test inputs of {res['tasks']} tasks ({cfg.split}), {m['votes']} votes: "
                      f"exact-match {m['exact_match']:.4f}  pass@2 {m['pass@2']:.4f}  "
                      f"token accuracy {m['token_accuracy']:.4f}", soft_wrap=True)
        console.print(f"submission: {res['submission']}", markup=False, soft_wrap=True)


def _run_config(values: dict[str, Any], config: Path | None, resume: bool) -> RunConfig:
    """Defaults <- --config FILE (or, with --resume, the run's run.toml) <- the options given. Values are
    checked once merged, so an option given on the command line replaces a bad one in the file."""
    tables: dict = {}
    source = str(config) if config is not None else None
    if source is None and resume:  # the run's own config: run.toml, else its latest checkpoint's
        out = Path(values.get("train.out", default_of("train.out")))
        latest = out / "latest"
        for f in [out / "run.toml"] + ([out / "checkpoints" / latest.read_text().strip() / "config.json"]
                                       if latest.is_file() else []):
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
        raise usage_error(e, source=None if e.field in values else (str(config) if config else None)) from None
