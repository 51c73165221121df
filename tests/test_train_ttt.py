"""Test-time training: leaves the model's weights exactly as they were, never reads a test output, is
deterministic by seed, and fits the task's demonstrations."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from arcforge.task import Pair, Task
from arcforge.train.config import EvalConfig, ModelConfig, TTTConfig
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.model import ArcTransformer
from arcforge.train.pack import pack, stack
from arcforge.train.ttt import fine_tune, leave_one_out, task_rng
from tests import train_fixtures
from tests.train_fixtures import load_arc1

arc_shards = train_fixtures.arc_shards  # the shared fixture


pytestmark = pytest.mark.usefixtures("one_thread")

SEQ = 512


@pytest.fixture(scope="module")
def tasks(shared_sources):
    return load_arc1(shared_sources, "evaluation", 2, max_side=5)


def _model(seed: int = 0) -> ArcTransformer:
    torch.manual_seed(seed)
    return ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2)).eval()


def _cfg(**ttt) -> EvalConfig:
    return EvalConfig(votes=2, max_new=24, ttt=TTTConfig(steps=2, batch_size=2, lr=1e-2, **ttt))


def _poisoned(task: Task, how: str) -> Task:
    rng = np.random.default_rng(7)
    test = [
        Pair(p.input, None if how == "absent" else rng.integers(0, 10, (3, 4)).astype(np.int8))
        for p in task.test
    ]
    return Task(task.id, task.source, task.split, task.train, test)


@pytest.mark.parametrize("lora", [0, 2])
def test_ttt_leaves_the_weights_exactly_as_they_were(tasks, lora):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = evaluate_tasks(model, tasks, seq_len=SEQ, device=torch.device("cpu"), cfg=_cfg(lora_rank=lora))
    assert all(r["ttt"]["steps"] == 2 for r in res.per_task)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert not any(n for n, _ in model.named_modules() if "lora" in type(_).__name__.lower())


def test_ttt_never_reads_a_test_output(tasks):
    """Predictions are identical whether the test outputs are right, random, or absent."""
    subs = []
    for how in ("real", "random", "absent"):
        ts = tasks[:1] if how == "real" else [_poisoned(t, how) for t in tasks[:1]]
        res = evaluate_tasks(_model(), ts, seq_len=SEQ, device=torch.device("cpu"), cfg=_cfg())
        subs.append((res.submission, [r["ttt"] for r in res.per_task]))
    assert subs[0] == subs[1] == subs[2]


def test_ttt_is_deterministic_by_seed(tasks):
    task = tasks[0]
    a, ra = fine_tune(_model(), task, TTTConfig(steps=3, batch_size=2, lr=1e-2), SEQ)
    b, rb = fine_tune(_model(), task, TTTConfig(steps=3, batch_size=2, lr=1e-2), SEQ)
    _, rc = fine_tune(_model(), task, TTTConfig(steps=3, batch_size=2, lr=1e-2, seed=1), SEQ)
    assert ra == rb and ra != rc
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_lora_adapters_do_not_depend_on_torchs_global_random_state(tasks):
    """Two LoRA fine-tunings of one task agree even when other work drew from torch's global generator in
    between (as a parallel TTT worker does), and a different TTT seed gives other adapters."""
    cfg = TTTConfig(steps=2, batch_size=2, lr=1e-2, lora_rank=2)
    model = _model()
    torch.manual_seed(1)
    a, ra = fine_tune(model, tasks[0], cfg, SEQ)
    torch.rand(1000)  # what another worker's work does to the global generator
    b, rb = fine_tune(model, tasks[0], cfg, SEQ)
    c, _ = fine_tune(model, tasks[0], replace(cfg, seed=1), SEQ)
    assert ra == rb
    adapters = [k for k in a.state_dict() if k.endswith(".a")]
    assert adapters
    for k in adapters:
        assert torch.equal(a.state_dict()[k], b.state_dict()[k]), k
    assert any(not torch.equal(a.state_dict()[k], c.state_dict()[k]) for k in adapters)


def test_leave_one_out_uses_only_demonstrations(tasks):
    task = tasks[0]
    cfg = TTTConfig(symmetries=False, colors=False, shuffle_train=False, loss_on="test")
    exs = leave_one_out(task, 2 * len(task.train), task_rng(cfg, task.id), cfg, SEQ)
    assert len(exs) == 2 * len(task.train)
    for ex in exs:
        assert ex.n_train == len(task.train) - 1
        # the target grid of every example is one of the train outputs, never a test output
        toks = ex.tokens[ex.targets][:-1]  # the target grid's tokens, EOS dropped
        outs = [tuple(toks)]
        assert any(tuple(_grid_tokens(p.output)) in outs for p in task.train)
    assert (
        leave_one_out(Task("x", "s", "e", task.train[:1], task.test), 4, task_rng(cfg, "x"), cfg, SEQ) == []
    )


def _grid_tokens(g: np.ndarray) -> list[int]:
    from arcforge.train.tokenize import grid_tokens

    return list(grid_tokens(g)[0])


def test_fine_tuning_fits_the_demonstrations(tasks):
    task = tasks[0]
    cfg = TTTConfig(steps=12, batch_size=4, lr=3e-3)
    held = leave_one_out(task, 8, np.random.default_rng(99), cfg, SEQ)
    b = stack(pack(held, max(SEQ, max(len(e) for e in held))))
    tok = torch.from_numpy(b.tokens)

    def loss(m: ArcTransformer) -> float:
        with torch.no_grad():
            lg = m(tok, torch.from_numpy(b.positions), torch.from_numpy(b.segments))
        mask = torch.from_numpy(b.targets[:, 1:])
        return float(F.cross_entropy(lg[:, :-1][mask], tok[:, 1:][mask]))

    base = _model()
    tuned, rep = fine_tune(base, task, cfg, SEQ)
    assert rep["steps"] == 12 and rep["loss_last"] < rep["loss_first"]
    assert loss(tuned) < loss(base) - 0.1


def test_cli_eval_with_test_time_training(arc_shards, tmp_path):
    import json

    from typer.testing import CliRunner

    from arcforge.cli.app import app
    from arcforge.train import checkpoint as ckpt
    from arcforge.train.config import DataConfig, TrainConfig
    from arcforge.train.model import n_params

    model = _model()
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2)
    run = tmp_path / "run"
    config = {
        "model": cfg.to_dict(),
        "data": DataConfig(root=str(arc_shards), seq_len=SEQ).to_dict(),
        "train": TrainConfig().to_dict(),
        "params": n_params(cfg),
    }
    ckpt.save_checkpoint(run, 1, model.state_dict(), {}, config)
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(run),
            "--data",
            str(arc_shards),
            "--limit",
            "1",
            "--votes",
            "2",
            "--ttt-steps",
            "1",
            "--ttt-batch-size",
            "2",
            "--ttt-lora-rank",
            "2",
            "--submission",
            str(tmp_path / "sub.json"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["metrics"]["ttt_steps"] == 1 and "pass@2_before" in rep["metrics"]
    assert rep["eval_config"]["ttt"]["lora_rank"] == 2
    assert all("exact_before" in t and t["ttt"]["steps"] == 1 for t in rep["per_task"])
    r = runner.invoke(app, ["eval", "--checkpoint", str(run), "--data", str(arc_shards), "--rank", "best"])
    assert r.exit_code == 2 and "--rank" in r.output


def test_base_attempt_merges_the_two_rankings():
    from arcforge.train.evaluate import with_base_attempt

    a, b, c = (np.full((2, 2), k, np.int8) for k in (1, 2, 3))
    merged = with_base_attempt({"ranked": [a, b], "first": a}, {"ranked": [c, a], "first": c})
    assert [int(g[0, 0]) for g in merged["ranked"]] == [1, 3, 2] and merged["first"] is a
    same = with_base_attempt({"ranked": [a, b], "first": a}, {"ranked": [a, c], "first": a})
    assert [int(g[0, 0]) for g in same["ranked"]] == [1, 2, 3]
    assert with_base_attempt({"ranked": [], "first": None}, {"ranked": [c], "first": c})["ranked"][0] is c


def test_the_second_attempt_is_the_base_models_answer(tasks):
    """With base_attempt, attempt 2 is what the model without TTT ranks first (where the tuned copy's
    first attempt differs); without it, both attempts come from the tuned copy."""

    def subs(**kw):
        cfg = replace(_cfg(**kw), max_new=80)  # every row ends (the side limit caps it) with an answer
        return evaluate_tasks(_model(), tasks, seq_len=SEQ, device=torch.device("cpu"), cfg=cfg).submission

    base = evaluate_tasks(
        _model(), tasks, seq_len=SEQ, device=torch.device("cpu"), cfg=EvalConfig(votes=2, max_new=80)
    ).submission
    mixed, tuned = subs(base_attempt=True), subs(base_attempt=False)
    assert mixed.keys() == base.keys() == tuned.keys()
    for key in base:
        for m, b, t in zip(mixed[key], base[key], tuned[key], strict=True):
            assert m["attempt_1"] == t["attempt_1"]
            assert b["attempt_1"] != [[0]]  # a decoded answer, not the placeholder
            if m["attempt_1"] != b["attempt_1"]:
                assert m["attempt_2"] == b["attempt_1"]
            else:
                assert m["attempt_2"] == t["attempt_2"]
    assert any(
        m["attempt_2"] != t["attempt_2"] for k in base for m, t in zip(mixed[k], tuned[k], strict=True)
    )


def test_tasks_fine_tuned_in_parallel_give_what_one_at_a_time_gives(shared_sources):
    """``ttt.workers``: several tasks fine-tuned at once, each in its own thread; the records, attempts and
    metrics are those of one task at a time (each task's TTT is seeded by its id), and the torch thread
    count is back as it was."""
    tasks = load_arc1(shared_sources, "evaluation", 5, max_side=5)
    model = _model(1)
    runs = {
        w: evaluate_tasks(model, tasks, seq_len=SEQ, device=torch.device("cpu"), cfg=_cfg(workers=w))
        for w in (1, 3)
    }
    assert torch.get_num_threads() == 1
    one, par = runs[1], runs[3]
    assert len(one.per_task) == sum(len(t.test) for t in tasks)
    assert par.per_task == one.per_task
    assert par.submission == one.submission
    assert par.metrics == one.metrics
    assert all(r["ttt"]["steps"] == 2 for r in par.per_task)
