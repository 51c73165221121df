"""The model: packing isolation, KV-cache decoding, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arcforge.errors import TrainError
from arcforge.train.config import ModelConfig
from arcforge.train.evaluate import vote
from arcforge.train.model import (
    ArcTransformer,
    KVCache,
    RowSpans,
    flops_per_token,
    mfu,
    n_params,
)
from arcforge.train.pack import pack_row
from arcforge.train.rope import RopeConfig
from arcforge.train.tokenize import encode_task
from tests.train_fixtures import small_tasks


@pytest.fixture(scope="module")
def examples():
    return [encode_task(t, 0, loss_on="test") for t in small_tasks("training", 3)]


def _logits(model, row):
    with torch.no_grad():
        return model(
            torch.from_numpy(row.tokens), torch.from_numpy(row.positions), torch.from_numpy(row.segments)
        )


@pytest.mark.parametrize("mode", ["2d+1d", "1d", "2d"])
def test_packed_example_does_not_see_its_neighbours(examples, mode):
    torch.manual_seed(0)
    model = ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2, rope_mode=mode)).eval()
    a, b, c = examples
    length = len(a) + max(len(b), len(c)) + 7
    ab, ac, ca = pack_row([a, b], length), pack_row([a, c], length), pack_row([c, a], length)
    alone = _logits(model, pack_row([a], len(a)))[0]
    n = len(a)
    torch.testing.assert_close(_logits(model, ab)[0, :n], _logits(model, ac)[0, :n], rtol=0, atol=1e-5)
    torch.testing.assert_close(_logits(model, ca)[0, len(c) : len(c) + n], alone, rtol=0, atol=1e-5)
    # and the mask is what makes it so: without segments the neighbour leaks in
    with torch.no_grad():
        leak = model(torch.from_numpy(ca.tokens), torch.from_numpy(ca.positions))[0, len(c) : len(c) + n]
    assert not torch.allclose(leak, alone, atol=1e-3)


def test_kv_cache_matches_full_forward(examples):
    torch.manual_seed(1)
    model = ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2)).eval()
    ex = examples[0]
    tok, pos = torch.from_numpy(ex.tokens)[None], torch.from_numpy(ex.positions)[None]
    with torch.no_grad():
        full = model(tok, pos)
        cache = KVCache.for_model(model, 1, 8)  # grows on demand
        head = model(tok[:, :20], pos[:, :20], cache=cache)
        chunk = model(tok[:, 20:25], pos[:, 20:25], cache=cache)  # several new tokens at once
        step = [model(tok[:, i : i + 1], pos[:, i : i + 1], cache=cache) for i in range(25, 30)]
    torch.testing.assert_close(torch.cat([head, chunk, *step], 1), full[:, :30], rtol=1e-4, atol=1e-4)


def test_vote_orders_by_count_then_logprob():
    g1, g2, g3 = (np.full((2, 2), c, np.int8) for c in (1, 2, 3))
    ranked = vote([(g1, -1.0), (g2, -0.1), (g1, -1.0), (g3, -0.05)])
    assert [int(r[0, 0]) for r in ranked] == [1, 3, 2]


def test_config_round_trip_and_flops():
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=2, rope_mode="2d")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert sum(p.numel() for p in ArcTransformer(cfg).parameters()) == n_params(cfg)
    assert flops_per_token(cfg, 1024) > 6 * n_params(cfg, embeddings=False)
    assert 0 < mfu(1e5, cfg, 1024, 1e12) < 1
    with pytest.raises(TrainError):
        ModelConfig(d_model=30, n_heads=4)


def test_axial_rope_fields_reach_rope_and_old_configs_load():
    old = ModelConfig(d_model=64, n_layers=1, n_heads=2, rope_mode="2d").to_dict()
    for name in (
        "rope_original_max_side",
        "rope_axis_base",
        "key_frames",
        "edge_frames",
        "pair_seq",
        "next_cell_queries",
        "qkv_bias",
        "rope_axis_scale",
        "frame_lookups",
        "frame_votes",
    ):
        del old[name]  # a checkpoint saved before the fields existed loads as it was trained
    cfg = ModelConfig.from_checkpoint(old)
    rope = RopeConfig.from_model(cfg)
    assert rope.original_max_side is None and rope.axis_base is None
    assert not (cfg.key_frames or cfg.edge_frames or cfg.pair_seq or cfg.next_cell_queries or cfg.qkv_bias)
    assert rope.axis_scale == 1.0 and cfg.frame_lookups == 0 and not cfg.frame_votes
    axial = ModelConfig(
        d_model=64,
        n_layers=1,
        n_heads=2,
        rope_mode="2d",
        rope_original_max_side=17,
        rope_axis_base=100.0,
        key_frames=False,
        next_cell_queries=False,
        qkv_bias=False,
        frame_lookups=0,
    )
    axial_rope = RopeConfig.from_model(axial)
    assert (axial_rope.original_max_side, axial_rope.axis_base) == (17, 100.0)
    assert ModelConfig.from_dict(axial.to_dict()) == axial
    torch.manual_seed(0)
    tokens, pos = torch.randint(0, 10, (1, 6)), torch.randint(0, 9, (1, 6, 3))
    a, b = ArcTransformer(cfg).eval(), ArcTransformer(axial).eval()
    b.load_state_dict(a.state_dict())  # same weights, only the axis base differs -> different logits
    assert not torch.allclose(a(tokens, pos), b(tokens, pos))


def test_edge_frames_change_only_the_keys_of_input_cells():
    """Same weights with and without the edge frames: logits differ once a layer's heads take an edge frame
    (layer 2 of 4 heads), and nothing differs for tokens that are not input-grid cells (no h, w)."""
    base = ModelConfig(d_model=64, n_layers=3, n_heads=4, edge_frames=False)
    edge = ModelConfig(d_model=64, n_layers=3, n_heads=4, edge_frames=True)
    torch.manual_seed(0)
    a, b = ArcTransformer(base).eval(), ArcTransformer(edge).eval()
    b.load_state_dict(a.state_dict())
    tokens = torch.randint(0, 10, (1, 12))
    pos = torch.zeros(1, 12, 5, dtype=torch.long)
    pos[0, :, 0] = torch.arange(12)
    pos[0, :, 1], pos[0, :, 2] = torch.arange(12) // 3 + 1, torch.arange(12) % 3 + 1
    assert torch.equal(a(tokens, pos), b(tokens, pos))  # no sized cells: frames move nothing
    pos[0, :6, 3], pos[0, :6, 4] = 2, 3  # the first 6 tokens: a 2x3 input grid
    assert not torch.allclose(a(tokens, pos), b(tokens, pos))


def test_queries_sit_where_the_predicted_token_will_be():
    """``next_cell_positions``: the token each position predicts lands at the place the query uses, for
    every token of a real encoded task (cells, row ends, grid starts)."""
    import numpy as np

    from arcforge.train.model import next_cell_positions
    from arcforge.train.tokenize import GRID_END, GRID_START, N_COLORS, ROW, encode

    rng = np.random.default_rng(0)
    pairs = [
        (rng.integers(0, 10, (h, w)).astype(np.int8), rng.integers(0, 10, (w, h)).astype(np.int8))
        for h, w in [(2, 3), (4, 1), (3, 3)]
    ]
    ex = encode(pairs[:2], *pairs[2], loss_on="test")
    tok, pos = torch.from_numpy(ex.tokens), torch.from_numpy(ex.positions)
    q = next_cell_positions(tok[None], pos[None, :, :3])[0]
    assert (q[:, 0] == pos[:, 0]).all()  # the sequence part is the token's own
    for i in range(len(tok) - 1):
        if int(tok[i]) < N_COLORS or int(tok[i]) in (ROW, GRID_START):
            nxt = int(tok[i + 1])
            if nxt != GRID_END:  # a cell or a ROW follows: the query is exactly where it sits
                assert q[i, 1:].tolist() == pos[i + 1, 1:3].tolist(), i
    other = ~((tok < N_COLORS) | (tok == ROW) | (tok == GRID_START))
    assert (q[other, 1:] == pos[other, 1:3]).all()


def test_copy_prior_makes_a_fresh_model_copy_cells_by_position():
    """At init with the copy prior, a query attends mostly to the key at its own (row, col)."""
    from arcforge.train.rope import rotate

    cfg = ModelConfig(d_model=64, n_layers=1, n_heads=2, copy_prior=3.0)
    model = ArcTransformer(cfg).eval()
    blk = model.blocks[0]
    h = w = 5
    rc = torch.tensor([(r, c) for r in range(1, h + 1) for c in range(1, w + 1)])
    pos = torch.cat([torch.zeros(len(rc), 1, dtype=torch.long), rc], 1)[None]
    cos, sin = model.rope.cos_sin(pos)
    x = blk.attn_norm(model.embed(torch.randint(0, 10, (1, len(rc)))))
    q, k, _ = blk.qkv(x).view(1, len(rc), 3, 2, 32).permute(2, 0, 3, 1, 4)
    att = (rotate(q, cos, sin) @ rotate(k, cos, sin).transpose(-1, -2)).softmax(-1)[0]  # [H, T, T]
    assert (att.argmax(-1) == torch.arange(len(rc))).all()
    assert att.diagonal(dim1=-2, dim2=-1).mean() > 0.5


def test_pair_positions_and_pair_seq():
    """Every token of an encoded task carries the index of its demonstration pair (BOS: 0, the test pair
    last); with ``pair_seq`` the model rotates by that index instead of the token index: the logits then
    do not change when the pairs' grids are shifted along the sequence by extra tokens in between."""
    import numpy as np

    from arcforge.train.tokenize import BOS, INPUT, encode

    rng = np.random.default_rng(0)
    train = [
        (rng.integers(0, 10, (2, 3)).astype(np.int8), rng.integers(0, 10, (3, 2)).astype(np.int8))
        for _ in range(3)
    ]
    ex = encode(train, rng.integers(0, 10, (2, 2)).astype(np.int8), None, loss_on="test")
    pair = ex.positions[:, 5]
    starts = np.flatnonzero(ex.tokens == INPUT)
    assert ex.tokens[0] == BOS and pair[0] == 0 and len(starts) == 4
    for j, (a, b) in enumerate(zip(starts, [*starts[1:], len(ex)], strict=True)):
        assert (pair[a:b] == j).all()
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=2, pair_seq=True)
    torch.manual_seed(0)
    m = ArcTransformer(cfg).eval()
    tok, pos = torch.from_numpy(ex.tokens)[None], torch.from_numpy(ex.positions)[None]
    shifted = pos.clone()
    shifted[..., 0] += 7 * shifted[..., 5]  # the token index jumps at every pair: nothing pair_seq sees
    assert torch.allclose(m(tok, pos), m(tok, shifted), atol=1e-5)
    plain = ArcTransformer(ModelConfig(d_model=64, n_layers=2, n_heads=2, pair_seq=False)).eval()
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(plain(tok, pos), plain(tok, shifted), atol=1e-3)


def test_frame_lookups_reach_the_embedding_and_models_without_them_ignore_them(examples):
    """The lookup columns of the positions change the logits of a model with ``frame_lookups`` and of no
    model without them (old checkpoints see what they were trained on)."""
    from arcforge.train.tokenize import LOOKUPS

    ex = examples[0]
    tok, pos = torch.from_numpy(ex.tokens)[None], torch.from_numpy(ex.positions)[None]
    other = pos.clone()
    other[..., LOOKUPS] = (other[..., LOOKUPS] + 3) % 11
    torch.manual_seed(0)
    with_lookups = ArcTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    without = ArcTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2, frame_lookups=0)).eval()
    with torch.no_grad():
        assert not torch.allclose(with_lookups(tok, pos), with_lookups(tok, other), atol=1e-4)
        torch.testing.assert_close(without(tok, pos), without(tok, other), rtol=0, atol=0)
        torch.testing.assert_close(without(tok, pos), without(tok, pos[..., :6]), rtol=0, atol=0)


def test_frame_votes_put_the_named_frames_color_first_on_real_geometric_tasks():
    """On generated rotate, transpose, flip and tile tasks, the test output's every cell is the color the
    votes rank first, with the full 1.0 of evidence behind it and no other color at 1.0: the frame the
    demonstrations name, applied to the test input. For the symmetries the row ends and the grid's end are
    voted "no cell" alike; a tiling covers the plane, so where its output ends is not a vote. The first
    pair's tokens, which have no evidence yet, get no votes."""
    from arcforge import synthetic
    from arcforge.train.model import frame_votes
    from arcforge.train.tokenize import EVIDENCE, LOOKUP_FRAMES, LOOKUPS, N_COLORS, NO_CELL

    checked = {"cells": 0, "ends": 0}
    for task in synthetic.generate(
        16, seed=3, families=["rotate", "transpose", "flip", "tile"], difficulty="easy"
    ):
        ex = encode_task(task, 0, loss_on="test")
        pos = torch.from_numpy(ex.positions)
        votes = frame_votes(pos[:, LOOKUPS][:, LOOKUP_FRAMES:], pos[:, EVIDENCE])  # [T, 11]
        assert votes.shape == (len(ex), NO_CELL + 1) and votes.min() >= 0 and votes.max() <= 1
        assert (votes[pos[:, 5] == 0] == 0).all()
        test_out = np.nonzero(ex.targets)[0]  # the test output's tokens, GRID_START .. EOS
        for j in test_out[1:-1]:  # each target token after GRID_START, up to the grid's end
            nxt = int(ex.tokens[j])
            if nxt >= N_COLORS and synthetic.family_of(task) == "tile":
                continue
            want = nxt if nxt < N_COLORS else NO_CELL  # a row's or the grid's end: no cell there
            assert votes[j - 1, want] == 1.0, (task.id, j)
            assert (votes[j - 1] < 1.0).sum() == NO_CELL, (task.id, j)  # and no other color has it all
            checked["cells" if nxt < N_COLORS else "ends"] += 1
    assert checked["cells"] > 200 and checked["ends"] > 50, checked


def test_frame_votes_reach_the_logits_and_old_models_have_none(examples):
    """With ``frame_votes`` the votes reach the logits (the read-out's bias zeroed, its weights alone make the
    difference); without, the model has no vote parameters, and a state dict without them loads into it
    (checkpoints saved before the field)."""
    ex = examples[0]
    tok, pos = torch.from_numpy(ex.tokens)[None], torch.from_numpy(ex.positions)[None]
    torch.manual_seed(0)
    voting = ArcTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    plain = ArcTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2, frame_votes=False)).eval()
    assert voting.vote_embed is not None and plain.vote_embed is None
    plain.load_state_dict({k: v for k, v in voting.state_dict().items() if not k.startswith("vote_embed")})
    with torch.no_grad():
        voting.vote_embed.bias.zero_()
        assert (voting(tok, pos) - plain(tok, pos)).abs().max() > 1e-3
        voting.vote_embed.weight.zero_()
        torch.testing.assert_close(voting(tok, pos), plain(tok, pos), rtol=0, atol=1e-6)


def test_a_model_of_12_lookup_frames_reads_those_and_ignores_the_tiling_frame(examples):
    """Checkpoints saved before the tiling frame have ``frame_lookups`` 12: on positions of 13 frames they
    read the 12 frames they were trained on, whatever the tiling frame's lookups and evidence say; a model of
    13 does read them."""
    from arcforge.train.tokenize import EVIDENCE, LOOKUP_FRAMES, LOOKUPS, TILE_FRAME

    ex = examples[0]
    tok, pos = torch.from_numpy(ex.tokens)[None], torch.from_numpy(ex.positions)[None]
    other = pos.clone()
    for col in (LOOKUPS.start + TILE_FRAME, LOOKUPS.start + LOOKUP_FRAMES + TILE_FRAME):
        other[..., col] = (other[..., col] + 5) % 11
    other[..., EVIDENCE.start + TILE_FRAME] = 100
    torch.manual_seed(0)
    old = ArcTransformer(
        ModelConfig.from_checkpoint(
            {**ModelConfig(d_model=32, n_layers=1, n_heads=2).to_dict(), "frame_lookups": 12}
        )
    ).eval()
    new = ArcTransformer(ModelConfig(d_model=32, n_layers=1, n_heads=2)).eval()
    assert old.cfg.frame_lookups == 12 and new.cfg.frame_lookups == LOOKUP_FRAMES == 13
    with torch.no_grad():
        torch.testing.assert_close(old(tok, pos), old(tok, other), rtol=0, atol=0)
        assert (new(tok, pos) - new(tok, other)).abs().max() > 1e-3


def test_last_token_only_forward_gives_the_full_forwards_logits_and_cache(examples):
    """A prefill that asks for each row's last logits only (``only=``) computes the last layer's queries and
    MLP there only, yet gives the same logits and writes the same keys/values as the full forward."""
    torch.manual_seed(4)
    model = ArcTransformer(ModelConfig(d_model=32, n_layers=3, n_heads=2)).eval()
    n = max(len(e) for e in examples)
    tok = torch.full((len(examples), n), 10)
    pos = torch.zeros(len(examples), n, examples[0].positions.shape[1], dtype=torch.long)
    for i, e in enumerate(examples):  # right-padded rows of different lengths
        tok[i, : len(e)], pos[i, : len(e)] = torch.from_numpy(e.tokens), torch.from_numpy(e.positions)
    last = torch.tensor([len(e) - 1 for e in examples])
    with torch.no_grad():
        full_cache, only_cache = (KVCache.for_model(model, len(examples), n) for _ in range(2))
        full = model(tok, pos, cache=full_cache)[torch.arange(len(examples)), last]
        only = model(tok, pos, cache=only_cache, only=last)
    assert only.shape == (len(examples), 1, model.cfg.vocab_size)
    torch.testing.assert_close(only[:, 0], full, rtol=0, atol=1e-5)
    assert torch.equal(only_cache.k, full_cache.k) and torch.equal(only_cache.v, full_cache.v)
    assert only_cache.length == full_cache.length == n
    with pytest.raises(TrainError, match="takes no mask"):
        model(tok, pos, mask=torch.ones(len(examples), 1, n, n, dtype=torch.bool), only=last)


def test_row_spans_attend_like_one_masked_call():
    """Attention split into row spans, each reading its keys from c0 on, equals one call over every key
    with the mask, as long as no span skips a key its rows may see."""
    torch.manual_seed(5)
    b, h, keys, dh = 7, 2, 40, 8
    q, k, v = torch.randn(b, h, 1, dh), torch.randn(b, h, keys, dh), torch.randn(b, h, keys, dh)
    first = torch.tensor([0, 0, 3, 9, 9, 20, 31])  # each row's first real key (sorted, as the decoder's)
    mask = (torch.arange(keys)[None] >= first[:, None])[:, None, None]  # [B, 1, 1, keys]
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    for spans in ([(0, 7, 0)], [(0, 2, 0), (2, 5, 3), (5, 7, 20)], [(0, 3, 0), (3, 6, 9), (6, 7, 31)]):
        torch.testing.assert_close(RowSpans(spans, mask).attend(q, k, v), dense, rtol=0, atol=1e-6)
