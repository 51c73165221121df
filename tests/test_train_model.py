"""The model: packing isolation, KV-cache decoding, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arcforge.errors import TrainError
from arcforge.train.evaluate import vote
from arcforge.train.model import ArcTransformer, KVCache, ModelConfig, flops_per_token, mfu, n_params
from arcforge.train.pack import pack_row
from arcforge.train.tokenize import encode_task
from tests.train_fixtures import small_tasks


@pytest.fixture(scope="module")
def examples():
    return [encode_task(t, 0) for t in small_tasks("training", 3)]


def _logits(model, row):
    with torch.no_grad():
        return model(torch.from_numpy(row.tokens), torch.from_numpy(row.positions), torch.from_numpy(row.segments))


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
    del old["rope_original_max_side"], old["rope_axis_base"]  # a checkpoint saved before the fields existed
    cfg = ModelConfig.from_dict(old)
    assert cfg.rope().original_max_side is None and cfg.rope().axis_base is None
    axial = ModelConfig(d_model=64, n_layers=1, n_heads=2, rope_mode="2d", rope_original_max_side=17,
                        rope_axis_base=100.0)
    assert (axial.rope().original_max_side, axial.rope().axis_base) == (17, 100.0)
    assert ModelConfig.from_dict(axial.to_dict()) == axial
    torch.manual_seed(0)
    tokens, pos = torch.randint(0, 10, (1, 6)), torch.randint(0, 9, (1, 6, 3))
    a, b = ArcTransformer(cfg).eval(), ArcTransformer(axial).eval()
    b.load_state_dict(a.state_dict())  # same weights, only the axis base differs -> different logits
    assert not torch.allclose(a(tokens, pos), b(tokens, pos))
