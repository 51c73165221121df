"""Grokfast filters: hand-computed updates, agreement with the paper's reference code, None grads,
non-finite grads, and checkpoint round trips."""

import io
from collections import deque

import pytest
import torch
from torch import nn

from arcforge.errors import TrainError
from arcforge.train.config import GrokfastConfig
from arcforge.train.grokfast import Grokfast, gradfilter_ema, gradfilter_ma


def _param(*vals):
    return nn.Parameter(torch.zeros(len(vals)))


def _feed(p, grads, step):
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        step()
        out.append(p.grad.tolist())
    return out


def test_ema_hand_computed():
    p = _param(0, 0)
    state = {}
    got = _feed(p, [[1.0, 2.0], [3.0, 4.0]], lambda: gradfilter_ema([p], state, alpha=0.5, lamb=2.0))
    # step 1: mu = g1 = [1,2]; g = g1 + 2 mu = [3, 6]
    # step 2: mu = .5 [1,2] + .5 [3,4] = [2,3]; g = [3,4] + 2 [2,3] = [7, 10]
    assert got == [[3.0, 6.0], [7.0, 10.0]]
    assert state["0"].tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    ("warmup", "want"),
    [
        # window 2, lamb 5; mean over the last <= 2 raw grads (the current one included)
        (False, [[1 + 5 * 1, 2 + 5 * 2], [3 + 5 * 2, 4 + 5 * 3], [5 + 5 * 4, 6 + 5 * 5]]),
        # warmup: untouched until the window is full
        (True, [[1, 2], [3 + 5 * 2, 4 + 5 * 3], [5 + 5 * 4, 6 + 5 * 5]]),
    ],
)
def test_ma_hand_computed_window(warmup, want):
    p = _param(0, 0)
    state = {}
    got = _feed(
        p,
        [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
        lambda: gradfilter_ma([p], state, window=2, lamb=5.0, warmup=warmup),
    )
    assert got == [[float(x) for x in row] for row in want]


# the paper's reference code (github.com/ironjr/grokfast, grokfast.py), kept verbatim in spirit
def _ref_ema(m, grads, alpha, lamb):
    if grads is None:
        grads = {
            n: p.grad.data.detach() for n, p in m.named_parameters() if p.requires_grad and p.grad is not None
        }
    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n] = grads[n] * alpha + p.grad.data.detach() * (1 - alpha)
            p.grad.data = p.grad.data + grads[n] * lamb
    return grads


def _ref_ma(m, grads, window_size, lamb, warmup):
    if grads is None:
        grads = {
            n: deque(maxlen=window_size)
            for n, p in m.named_parameters()
            if p.requires_grad and p.grad is not None
        }
    for n, p in m.named_parameters():
        if p.requires_grad and p.grad is not None:
            grads[n].append(p.grad.data.detach())
            if not warmup or len(grads[n]) == window_size:
                avg = sum(grads[n]) / len(grads[n])
                p.grad.data = p.grad.data + avg * lamb
    return grads


def _train(filter_step, steps=40, seed=0):
    """A tiny MLP on fixed random data with Adam; returns the final parameters."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(
            m(x[i % 4 * 16 : (i % 4 + 1) * 16]), y[i % 4 * 16 : (i % 4 + 1) * 16]
        ).backward()
        filter_step(m)
        opt.step()
    return [p.detach().clone() for p in m.parameters()]


@pytest.mark.parametrize(
    "cfg",
    [
        GrokfastConfig("ema", alpha=0.9, lamb=2.0),
        GrokfastConfig("ma", window=7, lamb=5.0, warmup=True),
        GrokfastConfig("ma", window=7, lamb=5.0, warmup=False),
    ],
)
def test_matches_paper_reference_code_over_training(cfg):
    ref_state = {"g": None}

    def ref(m):
        if cfg.kind == "ema":
            ref_state["g"] = _ref_ema(m, ref_state["g"], cfg.alpha, cfg.lamb)
        else:
            ref_state["g"] = _ref_ma(m, ref_state["g"], cfg.window, cfg.lamb, cfg.warmup)

    holder = {}

    def ours(m):
        gf = holder.setdefault("gf", Grokfast(m, cfg))
        assert gf.step() is True

    want, got = _train(ref), _train(ours)
    plain = _train(lambda m: None)
    for a, b in zip(want, got, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    assert any(not torch.allclose(a, c, atol=1e-3) for a, c in zip(want, plain, strict=True))


def test_ma_long_run_equals_exact_window_mean():
    """Over several ring wraps the running sum stays equal to the mean of the last `window` grads."""
    g = torch.Generator().manual_seed(1)
    p = nn.Parameter(torch.zeros(5))
    state, hist = {}, deque(maxlen=10)
    for _ in range(37):
        raw = torch.randn(5, generator=g) * 100
        hist.append(raw.clone())
        p.grad = raw.clone()
        gradfilter_ma([("w", p)], state, window=10, lamb=1.0)
        assert torch.allclose(p.grad, raw + torch.stack(list(hist)).mean(0), atol=1e-3)


def test_params_without_grad_are_skipped_and_joined_later():
    m = nn.ModuleDict({"used": nn.Linear(2, 2), "unused": nn.Linear(2, 2)})
    gf = Grokfast(m, GrokfastConfig("ema", alpha=0.5, lamb=1.0))
    m["used"](torch.ones(1, 2)).sum().backward()
    assert gf.step()
    assert m["unused"].weight.grad is None
    assert set(gf.state) == {"used.weight", "used.bias"}
    m["unused"](torch.ones(1, 2)).sum().backward()
    assert gf.step()
    assert set(gf.state) == {"used.weight", "used.bias", "unused.weight", "unused.bias"}


def test_nonfinite_grads_skip_the_update():
    m = nn.Linear(3, 1)
    gf = Grokfast(m, GrokfastConfig("ema"))
    m(torch.ones(1, 3)).sum().backward()
    gf.step()
    before = {k: v.clone() for k, v in gf.state.items()}
    m.weight.grad[0, 0] = float("nan")
    raw = m.bias.grad.clone()
    assert gf.step() is False
    assert torch.equal(m.bias.grad, raw)
    assert all(torch.equal(before[k], gf.state[k]) for k in before)
    assert gf.steps == 1
    assert gf.step(skip_if_nonfinite=False) is True  # explicitly asked: applies anyway


def test_kind_none_does_nothing():
    m = nn.Linear(3, 1)
    gf = Grokfast(m, GrokfastConfig())
    m(torch.ones(1, 3)).sum().backward()
    raw = m.weight.grad.clone()
    assert gf.step() is False and torch.equal(m.weight.grad, raw) and gf.state == {}


@pytest.mark.parametrize(
    "cfg", [GrokfastConfig("ema", alpha=0.8, lamb=2.0), GrokfastConfig("ma", window=3, lamb=5.0)]
)
def test_state_dict_round_trip_gives_identical_updates(cfg):
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(4, 3, generator=g) for _ in range(9)]

    def run(gf, p, gs):
        out = []
        for x in gs:
            p.grad = x.clone()
            gf.step()
            out.append(p.grad.clone())
        return out

    p1 = nn.Parameter(torch.zeros(4, 3))
    gf1 = Grokfast([("w", p1)], cfg)
    run(gf1, p1, grads[:5])
    buf = io.BytesIO()
    torch.save(gf1.state_dict(), buf)  # through serialization, as in a checkpoint
    buf.seek(0)
    p2 = nn.Parameter(torch.zeros(4, 3))
    gf2 = Grokfast([("w", p2)], cfg)
    gf2.load_state_dict(torch.load(buf, weights_only=True))
    assert gf2.steps == 5
    cont = run(gf1, p1, grads[5:])
    for a, b in zip(cont, run(gf2, p2, grads[5:]), strict=True):
        assert torch.equal(a, b)
    # a fresh filter (no state) would have produced something else
    p3 = nn.Parameter(torch.zeros(4, 3))
    assert not torch.equal(run(Grokfast([("w", p3)], cfg), p3, grads[5:])[0], cont[0])


def test_load_state_dict_rejects_other_config():
    p = nn.Parameter(torch.zeros(2))
    a = Grokfast([("w", p)], GrokfastConfig("ema", alpha=0.9))
    with pytest.raises(TrainError, match="saved with"):
        Grokfast([("w", p)], GrokfastConfig("ema", alpha=0.98)).load_state_dict(a.state_dict())
    with pytest.raises(TrainError, match="unknown Grokfast filter"):
        GrokfastConfig("sgd")
