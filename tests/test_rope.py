"""RoPE: rotation invariants, relative-position property (1-D, 2-D, mixed), and the scaling formulas
written out independently from the papers (and checked against HF transformers when installed)."""

import math

import numpy as np
import pytest
import torch

from arcforge.errors import TrainError
from arcforge.train.config import RopeScaling
from arcforge.train.rope import (
    RopeConfig,
    RotaryEmbedding,
    apply_rope,
    attention_scale,
    cos_sin,
    inv_freq,
    rope_angles,
    rotate,
)

MODES = {"1d": 1, "2d": 2, "2d+1d": 3}
SCALINGS = [s.value for s in RopeScaling]


def _positions(mode: str, b: int, t: int, gen: torch.Generator, hi: int = 40) -> torch.Tensor:
    n = MODES[mode]
    shape = (b, t) if n == 1 else (b, t, n)
    return torch.randint(0, hi, shape, generator=gen)


def _qk(b=2, h=3, t=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, t, d, generator=g, dtype=torch.float64),
        torch.randn(b, h, t, d, generator=g, dtype=torch.float64),
        g,
    )


def _reference_plain_rope(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Textbook RoPE via complex numbers: pair (x[i], x[i + D/2]) times exp(i * pos * base^(-2i/D))."""
    d = x.shape[-1]
    theta = torch.tensor([base ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    z = torch.complex(x[..., : d // 2], x[..., d // 2 :])
    z = z * torch.polar(torch.ones_like(theta), pos[:, None, :, None].double() * theta)
    return torch.cat([z.real, z.imag], dim=-1)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scaling", SCALINGS)
def test_rotation_preserves_norms(mode, scaling):
    q, k, g = _qk(d=16)
    cfg = RopeConfig(head_dim=16, mode=mode, scaling=scaling, factor=3.0, original_max_len=8)
    pos = _positions(mode, 2, 7, g)
    rq, rk = apply_rope(q, k, pos, cfg)
    m = attention_scale(cfg)  # YaRN scales q and k by mscale; every other method is a pure rotation
    assert torch.allclose(rq.norm(dim=-1), m * q.norm(dim=-1), atol=1e-5)
    assert torch.allclose(rk.norm(dim=-1), m * k.norm(dim=-1), atol=1e-5)
    assert (m == 1.0) == (scaling != "yarn")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scaling", ["none", "linear", "ntk", "yarn"])
def test_scores_depend_only_on_relative_offset(mode, scaling):
    """Shifting every position by the same constant (per axis) leaves all q.k scores unchanged, and a
    different relative layout does change them (so the test can fail)."""
    q, k, g = _qk(b=2, h=2, t=9, d=24 if mode != "2d+1d" else 32)
    cfg = RopeConfig(head_dim=q.shape[-1], mode=mode, scaling=scaling, factor=2.0, original_max_len=16)
    pos = _positions(mode, 2, 9, g, hi=20)
    shift = torch.tensor([5, 11, 3][: MODES[mode]]) if MODES[mode] > 1 else 13

    def scores(p):
        rq, rk = apply_rope(q, k, p, cfg)
        return rq @ rk.transpose(-1, -2)  # [B, H, T, T]

    base = scores(pos)
    assert torch.allclose(base, scores(pos + shift), atol=1e-5)  # float32 angles
    # shifting only the keys' positions changes the relative offsets -> scores change
    rq, _ = apply_rope(q, k, pos, cfg)
    _, rk2 = apply_rope(q, k, pos + shift, cfg)
    assert not torch.allclose(base, rq @ rk2.transpose(-1, -2), atol=1e-3)


def test_2d_axes_are_independent():
    """In 2-D mode moving a token along columns only changes the column quarter-pairs of its rotation."""
    d = 16
    x = torch.randn(1, 1, 1, d, dtype=torch.float64)
    cfg = RopeConfig(head_dim=d, mode="2d")
    a = apply_rope(x, x, torch.tensor([[[3, 4]]]), cfg)[0]
    b = apply_rope(x, x, torch.tensor([[[3, 9]]]), cfg)[0]
    # pairs: 0..3 row, 4..7 col; dims i and i+8 form pair i
    row_dims = [0, 1, 2, 3, 8, 9, 10, 11]
    col_dims = [4, 5, 6, 7, 12, 13, 14, 15]
    assert torch.allclose(a[..., row_dims], b[..., row_dims])
    assert not torch.allclose(a[..., col_dims], b[..., col_dims])


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scaling", SCALINGS)
def test_factor_one_is_plain_rope(mode, scaling):
    q, k, g = _qk(d=32)
    pos = _positions(mode, 2, 7, g, hi=5000)  # also beyond original_max_len (dynamic NTK must stay off)
    plain = RopeConfig(head_dim=32, mode=mode)
    scaled = RopeConfig(head_dim=32, mode=mode, scaling=scaling, factor=1.0, original_max_len=64)
    for a, b in zip(apply_rope(q, k, pos, plain), apply_rope(q, k, pos, scaled), strict=True):
        assert torch.equal(a, b)


def test_1d_matches_textbook_rope():
    q, k, g = _qk(d=16)
    pos = torch.randint(0, 300, (2, 7), generator=g)
    rq, _ = apply_rope(q, k, pos, RopeConfig(head_dim=16, base=500.0))
    assert torch.allclose(rq, _reference_plain_rope(q, pos, 500.0), atol=1e-5)


def test_2d_matches_textbook_rope_per_axis():
    """Axial 2-D = textbook 1-D RoPE on the row pairs (by row) and on the col pairs (by col)."""
    q, k, g = _qk(d=16)
    pos = torch.randint(0, 30, (2, 7, 2), generator=g)
    rq, _ = apply_rope(q, k, pos, RopeConfig(head_dim=16, mode="2d", base=100.0))
    # pairs 0..3 (dims 0-3 with 8-11) rotate by row with the spectrum of an 8-dim RoPE
    row = _reference_plain_rope(torch.cat([q[..., 0:4], q[..., 8:12]], -1), pos[..., 0], 100.0)
    col = _reference_plain_rope(torch.cat([q[..., 4:8], q[..., 12:16]], -1), pos[..., 1], 100.0)
    assert torch.allclose(
        torch.cat([row[..., :4], col[..., :4], row[..., 4:], col[..., 4:]], -1), rq, atol=1e-5
    )


# ---- the scaling formulas, written out from the papers -------------------------------------------------

D, BASE, L, S = 64, 10000.0, 512, 4.0


def _theta(base=BASE, d=D):
    return torch.tensor([base ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)


def _cfg(scaling, **kw):
    return RopeConfig(head_dim=D, base=BASE, scaling=scaling, factor=S, original_max_len=L, **kw)


def test_linear_interpolation_divides_frequencies():
    assert torch.allclose(inv_freq(_cfg("linear")).double(), _theta() / S, rtol=1e-6)


def test_ntk_aware_base():
    assert torch.allclose(inv_freq(_cfg("ntk")).double(), _theta(BASE * S ** (D / (D - 2))), rtol=1e-6)


def test_dynamic_ntk_only_beyond_training_length():
    cfg = _cfg("dynamic_ntk")
    assert torch.allclose(inv_freq(cfg, seq_len=L).double(), _theta(), rtol=1e-6)
    assert torch.allclose(inv_freq(cfg, seq_len=100).double(), _theta(), rtol=1e-6)
    for cur in (L + 1, 3 * L, 8 * L):
        want = _theta(BASE * ((S * cur / L) - (S - 1)) ** (D / (D - 2)))
        assert torch.allclose(inv_freq(cfg, seq_len=cur).double(), want, rtol=1e-6)


def _yarn_paper(d, base, length, s, beta_fast, beta_slow):
    """YaRN: per dim i, r = L / wavelength (rotations in the training context). r < beta_slow -> theta/s
    (interpolate), r > beta_fast -> theta (keep), linear ramp in the dim index between the boundary dims
    (floored / ceiled, as in the authors' code)."""
    theta = _theta(base, d)
    # dim index where r_i = L / (2 pi base^(2i/d)) equals beta:  i = d ln(L / (2 pi beta)) / (2 ln base)
    at = [d * math.log(length / (2 * math.pi * b)) / (2 * math.log(base)) for b in (beta_fast, beta_slow)]
    lo, hi = max(math.floor(at[0]), 0), min(math.ceil(at[1]), d - 1)
    out = []
    for i in range(d // 2):
        gamma = min(max((i - lo) / (hi - lo), 0.0), 1.0)  # 0 = keep, 1 = interpolate
        out.append((1 - gamma) * theta[i] + gamma * theta[i] / s)
    return torch.tensor(out, dtype=torch.float64), theta


@pytest.mark.parametrize(
    ("length", "base", "fast", "slow"), [(512, 10000.0, 32, 1), (2048, 500000.0, 32, 1), (64, 10000.0, 8, 2)]
)
def test_yarn_frequencies_and_temperature(length, base, fast, slow):
    cfg = RopeConfig(
        head_dim=D,
        base=base,
        scaling="yarn",
        factor=S,
        original_max_len=length,
        yarn_beta_fast=fast,
        yarn_beta_slow=slow,
    )
    got = inv_freq(cfg).double()
    want, theta = _yarn_paper(D, base, length, S, fast, slow)
    assert torch.allclose(got, want, rtol=1e-6)
    # the paper's boundary conditions hold exactly outside the ramp
    r = length * theta / (2 * math.pi)
    assert torch.allclose(got[r < slow], theta[r < slow] / S, rtol=1e-6)
    assert torch.allclose(got[r > fast], theta[r > fast], rtol=1e-6)
    assert bool((r < slow).any()) and bool((r > fast).any())
    # temperature: sqrt(1/t) = 0.1 ln s + 1, on q and k -> logits times (0.1 ln s + 1)^2
    assert attention_scale(cfg) == pytest.approx(0.1 * math.log(S) + 1)
    q = torch.randn(1, 1, 1, D, dtype=torch.float64)
    pos = torch.zeros(1, 1, dtype=torch.long)
    rq, rk = apply_rope(q, q, pos, cfg)
    assert float((rq * rk).sum()) == pytest.approx(float((q * q).sum()) * (0.1 * math.log(S) + 1) ** 2)


def test_only_yarn_has_a_temperature():
    for sc in SCALINGS:
        assert attention_scale(_cfg(sc)) == (pytest.approx(0.1 * math.log(S) + 1) if sc == "yarn" else 1.0)
    assert attention_scale(RopeConfig(head_dim=D, scaling="yarn", factor=1.0)) == 1.0


def test_against_hf_transformers():
    """HF transformers' ROPE_INIT_FUNCTIONS as an oracle (a test-only dependency)."""
    pytest.importorskip("transformers", reason="transformers is the optional test-only RoPE oracle")
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    def hf(rope_type, seq_len=None, **params):
        c = LlamaConfig(
            hidden_size=D * 4,
            num_attention_heads=4,
            head_dim=D,
            max_position_embeddings=L,
            rope_parameters={"rope_type": rope_type, "rope_theta": BASE, "factor": S, **params},
        )
        f, scale = ROPE_INIT_FUNCTIONS[rope_type](c, seq_len=seq_len)
        return f.double(), scale

    f, a = hf("linear")
    assert torch.allclose(inv_freq(_cfg("linear")).double(), f, rtol=1e-5) and a == 1.0
    for cur in (L // 2, 3 * L):
        f, _ = hf("dynamic", seq_len=cur)
        assert torch.allclose(inv_freq(_cfg("dynamic_ntk"), seq_len=cur).double(), f, rtol=1e-5)
    f, a = hf("yarn", original_max_position_embeddings=L)
    assert torch.allclose(inv_freq(_cfg("yarn")).double(), f, rtol=1e-5)
    assert attention_scale(_cfg("yarn")) == pytest.approx(a)


# ---- the module --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scaling", SCALINGS)
def test_module_matches_functions_and_switches_scaling(mode, scaling):
    q, k, g = _qk(d=32)
    q, k = q.float(), k.float()
    pos = _positions(mode, 2, 7, g, hi=200)
    emb = RotaryEmbedding(RopeConfig(head_dim=32, mode=mode, original_max_len=16))
    plain = emb(q, k, pos)
    emb.set_scaling(scaling, 4.0)
    assert emb.cfg.scaling == scaling and emb.cfg.factor == 4.0
    got = emb(q, k, pos)
    want = apply_rope(q, k, pos, emb.cfg)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # every scaling changes the rotation at factor 4 (dynamic NTK because positions exceed 16)
    assert (scaling == "none") == torch.allclose(got[0], plain[0], atol=1e-4)
    # the cache grows when larger positions arrive
    big = pos + 1000
    assert torch.allclose(emb(q, k, big)[0], apply_rope(q, k, big, emb.cfg)[0], atol=1e-4)


def test_partial_rotary_passes_the_rest_through():
    x = torch.randn(1, 2, 5, 24)
    c, s = cos_sin(torch.arange(5)[None], RopeConfig(head_dim=16))
    y = rotate(x, c, s)
    assert torch.equal(y[..., 16:], x[..., 16:])
    assert not torch.allclose(y[..., :16], x[..., :16])


def test_bad_configs_raise_clear_errors():
    with pytest.raises(TrainError, match="mode"):
        RopeConfig(head_dim=16, mode="3d")
    with pytest.raises(TrainError, match="scaling"):
        RopeConfig(head_dim=16, scaling="xpos")
    with pytest.raises(TrainError, match="multiple of 4"):
        RopeConfig(head_dim=18, mode="2d")
    with pytest.raises(TrainError, match="multiple of 8"):
        RopeConfig(head_dim=20, mode="2d+1d")
    with pytest.raises(TrainError, match="factor"):
        RopeConfig(head_dim=16, factor=0.5)
    with pytest.raises(TrainError, match="positions"):
        apply_rope(
            torch.zeros(1, 1, 3, 16),
            torch.zeros(1, 1, 3, 16),
            torch.zeros(1, 3, dtype=torch.long),
            RopeConfig(head_dim=16, mode="2d"),
        )


# ------------------------------------------------------------------------------------- symmetry frames
D8_NUMPY = {
    "identity": lambda g: g,
    "flip_lr": np.fliplr,
    "flip_ud": np.flipud,
    "rot180": lambda g: np.rot90(g, 2),
    "transpose": lambda g: g.T,
    "anti_transpose": lambda g: np.rot90(g, 2).T,
    "rot90": lambda g: np.rot90(g, 1),
    "rot270": lambda g: np.rot90(g, 3),
}


@pytest.mark.parametrize("frame", range(8))
def test_a_frame_head_attends_each_output_cell_to_the_input_cell_its_symmetry_moves_there(frame):
    """The point of the frames: with keys placed by symmetry ``g`` and queries at their own cell, the
    highest RoPE score of output cell (i, j) is exactly the input cell that ``g`` sends to (i, j)."""
    from arcforge.train.rope import D8_FRAMES, frame_rc

    cfg = RopeConfig(head_dim=32, mode="2d+1d")
    rng = np.random.default_rng(frame)
    for h, w in [(3, 5), (4, 4), (6, 2), (1, 7)]:
        grid = np.arange(h * w).reshape(h, w)
        out = D8_NUMPY[D8_FRAMES[frame]](grid)
        rc = torch.tensor([(r, c) for r in range(1, h + 1) for c in range(1, w + 1)])
        keys = frame_rc(rc, torch.tensor([h, w]).expand(len(rc), 2), frame)
        oh, ow = out.shape
        queries = torch.tensor([(i, j) for i in range(1, oh + 1) for j in range(1, ow + 1)])
        seq = torch.zeros(1, len(rc), 1, dtype=torch.long)  # same seq position: only the grid part matters
        kc, ks = cos_sin(torch.cat([seq, keys[None]], -1), cfg)
        qc, qs = cos_sin(torch.cat([seq[:, : len(queries)], queries[None]], -1), cfg)
        v = torch.zeros(32)
        v[8:16] = torch.from_numpy(rng.uniform(0.5, 1.5, 8)).float()  # row/col rotary pairs only
        v[24:32] = v[8:16]
        k = rotate(v.expand(1, 1, len(rc), 32), kc, ks)
        q = rotate(v.expand(1, 1, len(queries), 32), qc, qs)
        best = (q @ k.transpose(-1, -2))[0, 0].argmax(-1)  # [queries] -> key index
        assert grid.ravel()[best.numpy()].tolist() == out.ravel().tolist(), (D8_FRAMES[frame], h, w)


EDGE_NUMPY = {
    "mirror_right": lambda g: np.hstack([g, np.fliplr(g)]),
    "mirror_down": lambda g: np.vstack([g, np.flipud(g)]),
    "shift_right": lambda g: np.hstack([g, g]),
    "shift_down": lambda g: np.vstack([g, g]),
}


@pytest.mark.parametrize("frame", range(8, 12))
def test_an_edge_frame_head_attends_each_cell_beyond_the_edge_to_its_source(frame):
    """Edge frames: in the mirrored or repeated concatenation of a grid, every cell beyond the right (or
    bottom) edge gets its highest RoPE score from the input cell it copies."""
    from arcforge.train.rope import FRAMES, frame_rc

    cfg = RopeConfig(head_dim=32, mode="2d+1d")
    rng = np.random.default_rng(frame)
    for h, w in [(3, 5), (4, 4), (6, 2), (1, 7)]:
        grid = np.arange(h * w).reshape(h, w)
        full = EDGE_NUMPY[FRAMES[frame]](grid)
        beyond = full[:, w:] if FRAMES[frame].endswith("right") else full[h:]
        r0, c0 = (0, w) if FRAMES[frame].endswith("right") else (h, 0)
        rc = torch.tensor([(r, c) for r in range(1, h + 1) for c in range(1, w + 1)])
        keys = frame_rc(rc, torch.tensor([h, w]).expand(len(rc), 2), frame)
        queries = torch.tensor([(r0 + i, c0 + j) for i in range(1, h + 1) for j in range(1, w + 1)])
        seq = torch.zeros(1, len(rc), 1, dtype=torch.long)
        kc, ks = cos_sin(torch.cat([seq, keys[None]], -1), cfg)
        qc, qs = cos_sin(torch.cat([seq, queries[None]], -1), cfg)
        v = torch.zeros(32)
        v[8:16] = torch.from_numpy(rng.uniform(0.5, 1.5, 8)).float()
        v[24:32] = v[8:16]
        k = rotate(v.expand(1, 1, len(rc), 32), kc, ks)
        q = rotate(v.expand(1, 1, len(queries), 32), qc, qs)
        best = (q @ k.transpose(-1, -2))[0, 0].argmax(-1)
        assert grid.ravel()[best.numpy()].tolist() == beyond.ravel().tolist(), (FRAMES[frame], h, w)


def test_frames_move_only_sized_cells_and_keep_the_rest():
    from arcforge.train.rope import frame_rc, framed_positions, head_frames

    rc = torch.tensor([[1, 2], [0, 0], [3, 4]])
    hw = torch.tensor([[2, 3], [0, 0], [0, 0]])
    assert frame_rc(rc, hw, 1).tolist() == [[1, 2], [0, 0], [3, 4]]  # flip_lr: (r, w + 1 - c)
    assert frame_rc(rc, hw, 4).tolist() == [[2, 1], [0, 0], [3, 4]]  # transpose
    assert (
        head_frames(4, 0) == (0, 1, 2, 3)
        and head_frames(4, 1) == (4, 5, 6, 7)
        and head_frames(8, 2) == tuple(range(8))
    )
    assert [head_frames(4, layer, 12) for layer in range(3)] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    pos = torch.tensor([[[7, 1, 2, 2, 3], [8, 0, 0, 0, 0]]])
    fp = framed_positions(pos, (0, 1, 4))
    assert fp.shape == (1, 3, 2, 3)
    assert (
        fp[0, :, 0].tolist() == [[7, 1, 2], [7, 1, 2], [7, 2, 1]]
        and (fp[0, :, 1] == torch.tensor([8, 0, 0])).all()
    )


def test_axis_scale_multiplies_only_the_row_and_col_frequencies():
    plain = RopeConfig(head_dim=32, mode="2d+1d", axis_base=10.0)
    fast = RopeConfig(head_dim=32, mode="2d+1d", axis_base=10.0, axis_scale=3.0)
    pos = torch.tensor([[[4, 2, 3]]])
    a, b = rope_angles(pos, plain), rope_angles(pos, fast)
    torch.testing.assert_close(b[..., :8], a[..., :8])  # the sequence part is untouched
    torch.testing.assert_close(b[..., 8:], 3 * a[..., 8:])
    module = RotaryEmbedding(fast)
    torch.testing.assert_close(module.cos_sin(pos)[0], cos_sin(pos, fast)[0])
