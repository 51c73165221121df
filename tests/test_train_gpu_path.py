"""The GPU path on CPU: flex_attention's block mask gives the dense mask's result, and the model compiles
as one graph (no host sync in the forward pass) with the same outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from arcforge.train.config import ModelConfig
from arcforge.train.model import ArcTransformer
from arcforge.train.pack import pack_row
from arcforge.train.tokenize import encode_task
from tests.train_fixtures import load_arc1


@pytest.fixture(scope="module")
def row(shared_sources):
    exs = [encode_task(t, 0, loss_on="test") for t in load_arc1(shared_sources, "training", 3, max_side=6)]
    return pack_row(exs, sum(len(e) for e in exs) + 5)


def _inputs(row):
    return torch.from_numpy(row.tokens), torch.from_numpy(row.positions), torch.from_numpy(row.segments)


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_flex_attention_block_mask_equals_the_dense_mask(row, monkeypatch):
    torch.manual_seed(0)
    model = ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2)).eval()
    with torch.no_grad():
        dense = model(*_inputs(row))
        monkeypatch.setenv("ARCFORGE_FLEX", "1")  # the CUDA path, run eagerly on CPU
        flex = model(*_inputs(row))
    torch.testing.assert_close(flex, dense, rtol=1e-4, atol=1e-4)


def test_model_compiles_as_one_graph_with_the_same_results(row):
    torch.manual_seed(0)
    model = ArcTransformer(ModelConfig(d_model=32, n_layers=2, n_heads=2))
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)  # a graph break would raise
    eager_out = model(*_inputs(row))
    eager_out.square().mean().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = compiled(*_inputs(row))
    out.square().mean().backward()
    torch.testing.assert_close(out, eager_out, rtol=1e-4, atol=1e-5)
    for g, e in zip((p.grad for p in model.parameters()), eager_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-5)
