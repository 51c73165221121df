"""Batched decoding: equals sequential decoding token for token, equals the argmax of a full forward pass,
keeps every output a rectangle, and scores candidates consistently with decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arcforge.train import decode
from arcforge.train.augment import voting_transforms
from arcforge.train.config import ModelConfig
from arcforge.train.decode import (
    MAX_SPANS,
    decode_batch,
    grammar_mask,
    output_positions,
    row_spans,
    score_candidates,
    score_with_prefix,
)
from arcforge.train.evaluate import prompt
from arcforge.train.model import ArcTransformer, KVCache
from arcforge.train.tokenize import GRID_END, N_COLORS, ROW, input_table
from tests.train_fixtures import load_arc1

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    m = ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2)).eval()
    # bias the head towards ROW/GRID_END so that a random model closes small grids now and then
    with torch.no_grad():
        m.embed.weight[ROW] *= 4
        m.embed.weight[GRID_END] *= 4
    return m


@pytest.fixture(scope="module")
def prompts(shared_sources):
    tasks = load_arc1(shared_sources, "training", 4, max_side=7)
    out = []
    for task in tasks:  # prompts of different lengths, under several transforms
        for t in voting_transforms(3, 0):
            out.append(prompt(t.task(task), 0, 1024))
    assert len({len(p) for p in out}) >= 3
    return out


@pytest.mark.parametrize(("sync_every", "amp"), [(16, False), (2, False), (None, False), (None, True)])
def test_batched_decoding_equals_sequential_token_for_token(model, prompts, sync_every, amp):
    """Prompts of several lengths (prefilled per length into one right-aligned cache); finished rows leave
    the batch at a check (every 16 or 2 steps, or every step: the CPU default); fp32 and bf16 autocast."""
    sides = [4 + i % 3 for i in range(len(prompts))]  # per-row side limits
    batched = decode_batch(model, prompts, max_new=40, max_sides=sides, sync_every=sync_every, amp=amp)
    for p, b, side in zip(prompts, batched, sides, strict=True):
        alone = decode_batch(model, [p], max_new=40, max_side=side, amp=amp)[0]
        assert alone.tokens == b.tokens
        assert alone.logp == pytest.approx(b.logp, abs=1e-2 if amp else 1e-4)
        assert (alone.grid is None) == (b.grid is None)
    assert any(b.grid is not None for b in batched) and len({tuple(b.tokens) for b in batched}) > 1


def _replay_state(tokens: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(width, row, col) before each token, from the grammar's definition."""
    width, row, col = 0, 1, 1
    ws, rs, cs = [], [], []
    for t in tokens:
        ws.append(width), rs.append(row), cs.append(col)
        if t == ROW:
            width = width or col - 1
            row, col = row + 1, 1
        elif t < N_COLORS:
            col += 1
    return ws, rs, cs


def test_greedy_decoding_equals_argmax_of_a_full_forward_pass(model, prompts):
    for p in prompts[:4]:
        d = decode_batch(model, [p], max_new=40, max_side=6)[0]
        seq = d.tokens + ([GRID_END] if d.grid is not None else [])
        n = len(p)
        tok = torch.tensor(np.concatenate([p.tokens, seq]))[None]
        ws, rs, cs = _replay_state(seq)
        # positions of the emitted tokens, as the decoder assigns them
        pos = np.concatenate(
            [
                p.positions,
                output_positions(p.positions[-1], n, np.stack([rs, cs], 1), np.asarray(seq), input_table(p)),
            ]
        )
        with torch.no_grad():
            logits = model(tok, torch.from_numpy(pos)[None])[0, n - 1 : n - 1 + len(seq)]
        m = grammar_mask(torch.tensor(ws), torch.tensor(rs), torch.tensor(cs), logits.shape[-1], 6)
        lp = torch.log_softmax(logits + m, -1)
        assert lp.argmax(-1).tolist() == seq
        assert float(lp.gather(1, torch.tensor(seq)[:, None]).sum()) == pytest.approx(d.logp, abs=1e-4)


def test_every_finished_row_is_a_rectangle_within_max_side(model, prompts):
    for d in decode_batch(model, prompts, max_side=4):
        assert d.grid is not None  # the grammar forces an end within 4 * 5 + 1 tokens
        assert 1 <= d.grid.shape[0] <= 4 and 1 <= d.grid.shape[1] <= 4


def test_scoring_a_decoded_grid_gives_its_decoding_log_prob(model, prompts):
    decoded = decode_batch(model, prompts, max_side=5)
    pairs = [(p, d.grid) for p, d in zip(prompts, decoded, strict=True)]
    scores = score_candidates(model, pairs, max_side=5)
    for s, d in zip(scores, decoded, strict=True):
        assert s == pytest.approx(d.logp, abs=1e-3)
    # another grid is less likely than the greedy one
    other = score_candidates(model, [(prompts[0], (decoded[0].grid + 1) % 10)], max_side=5)[0]
    assert other < scores[0]


def test_scoring_from_the_kept_prompt_cache_equals_a_full_forward(model, prompts):
    decoded, prefix = decode_batch(model, prompts, max_side=5, keep_prefix=True)
    rng = np.random.default_rng(0)
    rows = [int(r) for r in rng.integers(0, len(prompts), 9)]
    grids = [
        rng.integers(0, 10, (int(rng.integers(1, 6)), int(rng.integers(1, 6)))).astype(np.int8) for _ in rows
    ]
    rows.append(0)
    grids.append(decoded[0].grid)
    fast = score_with_prefix(model, prefix, rows, grids, max_side=5, chunk=4)
    full = score_candidates(model, [(prompts[r], g) for r, g in zip(rows, grids, strict=True)], max_side=5)
    assert fast == pytest.approx(full, abs=1e-3)
    assert fast[-1] == pytest.approx(decoded[0].logp, abs=1e-3)


def test_output_side_limit_follows_the_demonstrations():
    from arcforge.task import Pair, Task
    from arcforge.train.evaluate import output_side_limit

    g = np.zeros((3, 3), np.int8)
    tile = Task(
        "t", "s", "e", [Pair(g, np.zeros((3, 9), np.int8))] * 2, [Pair(np.zeros((5, 5), np.int8), None)]
    )
    assert output_side_limit(tile, 0) == 17  # 5 x 3 (the demonstrated ratio) + 2
    same = Task("t", "s", "e", [Pair(g, g)], [Pair(np.zeros((2, 2), np.int8), None)])
    assert output_side_limit(same, 0) == 5  # the largest train output + 2
    big = Task("t", "s", "e", [Pair(g, np.zeros((3, 30), np.int8))], [Pair(np.zeros((9, 9), np.int8), None)])
    assert output_side_limit(big, 0) == 30


def test_bf16_scoring_from_the_kept_prompt_cache_matches_bf16_decoding(model, prompts):
    """Under bf16 autocast (``--amp``) the re-scoring reads the bf16 cache and agrees with decoding and,
    within bf16 rounding, with the fp32 full forward."""
    decoded, prefix = decode_batch(model, prompts, max_side=5, keep_prefix=True, amp=True)
    rows = list(range(len(prompts)))
    grids = [d.grid for d in decoded]
    fast = score_with_prefix(model, prefix, rows + rows, grids + [(g + 1) % 10 for g in grids], max_side=5)
    assert fast[: len(rows)] == pytest.approx([d.logp for d in decoded], abs=0.05)
    full = score_candidates(
        model, list(zip(prompts + prompts, grids + [(g + 1) % 10 for g in grids], strict=True)), max_side=5
    )
    assert fast == pytest.approx(full, rel=0.02, abs=0.1)


def _span_cost(first, keys, spans, per_span):
    return sum((r1 - r0) * (keys - c0) + per_span for r0, r1, c0 in spans)


def test_row_spans_cover_every_row_and_read_the_fewest_keys():
    """The split is contiguous, covers every row once, lets no row miss a real key, and is as cheap as the
    best of all splits into at most MAX_SPANS ranges (brute force over the cut points)."""
    import itertools

    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(1, 14))
        first = np.sort(rng.choice([0, 32, 64, 96, 192, 288], size=n))
        keys, per_span = 320 + int(rng.integers(0, 64)), int(rng.choice([0, 64, 512]))
        spans = row_spans(first, keys, span_cost=per_span)
        assert spans[0][0] == 0 and spans[-1][1] == n and len(spans) <= MAX_SPANS
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(c0 <= first[r0:r1].min() for r0, r1, c0 in spans)
        best = min(
            _span_cost(
                first,
                keys,
                [(a, b, int(first[a:b].min())) for a, b in itertools.pairwise((0, *cuts, n))],
                per_span,
            )
            for k in range(MAX_SPANS)
            for cuts in itertools.combinations(range(1, n), k)
        )
        assert _span_cost(first, keys, spans, per_span) == best, (trial, first, spans)
    # one length: one span; two far-apart lengths: two spans, the short prompts skipping the long ones' keys
    assert row_spans(np.zeros(8, int), 400) == [(0, 8, 0)]
    assert row_spans(np.array([0] * 8 + [256] * 8), 400) == [(0, 8, 0), (8, 16, 256)]


def test_decoding_with_many_row_spans_equals_one_row_at_a_time(model, prompts, monkeypatch):
    """Every distinct prompt start its own span (no span cost): each row still decodes what it decodes
    alone, in fp32 and bf16, with the log-probability a full forward pass (no cache, no spans) gives."""
    monkeypatch.setattr(decode, "SPAN_COST", 0)
    assert len({decode.padded_length(len(p)) for p in prompts}) >= 2  # so that the batch really splits
    for amp in (True, False):
        batched = decode_batch(model, prompts, max_new=40, max_side=5, amp=amp)
        for p, b in zip(prompts, batched, strict=True):
            alone = decode_batch(model, [p], max_new=40, max_side=5, amp=amp)[0]
            assert alone.tokens == b.tokens
            assert alone.logp == pytest.approx(b.logp, abs=1e-2 if amp else 1e-4)
    scores = score_candidates(model, [(p, b.grid) for p, b in zip(prompts, batched, strict=True)], max_side=5)
    assert all(b.grid is not None for b in batched)
    assert scores == pytest.approx([b.logp for b in batched], abs=1e-4)


@pytest.mark.parametrize("amp", [False, True])
def test_prefill_leaves_every_column_a_step_reads_finite_in_an_uninitialized_cache(model, prompts, amp):
    """The decoder's cache is allocated uninitialized: the prefill must write every column up to the prompt
    end, the left padding included (masked keys still enter SDPA: a NaN there would poison the row)."""
    ps = sorted(prompts, key=len, reverse=True)
    cfg = model.cfg
    p = decode.padded_length(len(ps[0]))
    cache = KVCache(
        cfg.n_layers,
        len(ps),
        cfg.n_heads,
        cfg.head_dim,
        p + 8,
        "cpu",
        dtype=torch.bfloat16 if amp else torch.float32,
        zeroed=False,
    )
    cache.k.fill_(float("nan"))  # what uninitialized memory may hold
    cache.v.fill_(float("nan"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        logits = decode._prefill(model, ps, cache)
    assert cache.length == p
    assert torch.isfinite(cache.k[:, :, :, :p]).all() and torch.isfinite(cache.v[:, :, :, :p]).all()
    assert torch.isfinite(logits).all()
    assert torch.isnan(cache.k[:, :, :, p:]).all()  # the decoding columns are left for the steps to write
