"""Batched greedy decoding of output grids, and candidate scoring (teacher forcing) for voting.

Many prompts (every vote transform of a test input, of several tasks) decode as ONE batch:

- prompts are left-padded to a common length ``P`` so that every row writes the same KV-cache column at
  every step (``KVCache`` is preallocated; ``length`` is a host int, so a step needs no device->host sync);
  pad keys are masked out, and a pad query attends to itself only (a fully masked row would give NaN,
  and NaN times a zero attention weight is still NaN);
- positions are explicit ``(seq, row, col)`` per token (``arcforge.train.tokenize``), so left padding does
  not shift them;
- a grammar keeps every row a well-formed grid: colors and ``ROW`` until the first ``ROW`` fixes the width
  ``w`` (at most ``MAX_SIDE`` cells), then exactly ``w`` colors and a ``ROW`` per line, and ``GRID_END``
  only at the start of a line (at most ``MAX_SIDE`` lines). Every finished row is thus a rectangle;
- each row stops on its own ``GRID_END`` (its later tokens are ignored); the loop ends when every row is
  done, checked on the host every ``sync_every`` steps only, or after ``max_new`` tokens.

All state (``width``, ``row``, ``col``, ``done``, summed log-probs) lives in ``[B]`` device tensors.

``score_candidates`` is the other half of product-of-experts voting: the summed log-probability of given
output grids after given prompts, by one teacher-forced forward pass over a left-padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from arcforge.grids import Grid
from arcforge.train.model import ArcTransformer, KVCache
from arcforge.train.tokenize import (
    GRID_END,
    N_COLORS,
    PAD,
    POS_DIMS,
    ROW,
    Example,
    grid_tokens,
    parse_grid_tokens,
    widen,
)

MAX_SIDE = 30
MAX_NEW_TOKENS = MAX_SIDE * (MAX_SIDE + 1) + 1  # a 30x30 grid: 30 rows of 30 cells + ROW, then GRID_END
NEG_INF = float("-inf")


@dataclass
class Decoded:
    """One decoded row: the grid (None if ``max_new`` ran out first), the summed log-probability of the
    chosen tokens (GRID_END included), and the emitted tokens (GRID_END excluded)."""

    grid: Grid | None
    logp: float
    tokens: list[int]


def grammar_mask(width: Tensor, row: Tensor, col: Tensor, vocab: int, max_side: int | Tensor = MAX_SIDE) -> Tensor:
    """Additive mask ``[B, V]`` (0 allowed, -inf not) from the per-row state ``[B]``: ``width`` (0 while the
    first line is open), ``row``/``col`` (1-based line and cell of the next token); ``max_side`` an int or
    a per-row ``[B]`` limit."""
    first = width == 0
    cell_ok = torch.where(first, col <= max_side, (col <= width) & (row <= max_side))
    row_ok = torch.where(first, col > 1, col == width + 1)
    end_ok = ~first & (col == 1)
    b = width.shape[0]
    ok = torch.zeros(b, vocab, dtype=torch.bool, device=width.device)
    ok[:, :N_COLORS] = cell_ok[:, None]
    ok[:, ROW] = row_ok
    ok[:, GRID_END] = end_ok
    return torch.zeros(b, vocab, device=width.device).masked_fill(~ok, NEG_INF)


def left_pad(seqs: list[Example], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``tokens [B, P]``, ``positions [B, P, POS_DIMS]`` and ``valid [B, P]`` (False on the left padding)."""
    p = max(len(e) for e in seqs)
    b = len(seqs)
    tokens = np.full((b, p), PAD, np.int64)
    positions = np.zeros((b, p, POS_DIMS), np.int64)
    valid = np.zeros((b, p), bool)
    for i, e in enumerate(seqs):
        n = len(e)
        tokens[i, p - n :] = e.tokens
        positions[i, p - n :] = e.positions
        valid[i, p - n :] = True
    return (torch.from_numpy(tokens).to(device), torch.from_numpy(positions).to(device),
            torch.from_numpy(valid).to(device))


def prefill_mask(valid: Tensor) -> Tensor:
    """``[B, 1, P, P]``: causal, real keys only; a pad query sees itself (keeps its output finite)."""
    p = valid.shape[1]
    causal = torch.ones(p, p, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(p, dtype=torch.bool, device=valid.device)
    return ((causal & valid[:, None, :]) | eye)[:, None]


@dataclass
class Prefix:
    """The prefilled prompts of a decoded batch, kept to score candidate grids without re-reading the
    prompts: the cache (rewound to the prompt length ``P``), which keys are real, each prompt's length and
    the logits after its last token."""

    cache: KVCache
    valid: Tensor  # [B, P] bool
    lengths: Tensor  # [B]
    last_logits: Tensor  # [B, V]


@torch.no_grad()
def decode_batch(model: ArcTransformer, prompts: list[Example], *, max_new: int = MAX_NEW_TOKENS,
                 max_side: int = MAX_SIDE, max_sides: list[int] | None = None, sync_every: int = 16,
                 keep_prefix: bool = False) -> list[Decoded] | tuple[list[Decoded], Prefix]:
    """Greedy-decode the output grid after each prompt (which ends in ``OUTPUT GRID_START``), all rows as
    one batch. Rows are independent: the result of a row does not depend on the others (tested).
    ``max_sides``: a per-row side limit (default ``max_side`` for all). ``keep_prefix``: also return the
    ``Prefix`` for ``score_with_prefix``.

    At every host check (each ``sync_every`` steps) finished rows leave the batch once at least half of
    it is done, so one long row does not keep paying for the others."""
    if not prompts:
        return []
    device = next(model.parameters()).device
    tokens, positions, valid = left_pad(prompts, device)
    b, p = tokens.shape
    cache = KVCache.for_model(model, b, p + min(max_new, 64))
    logits = model(tokens, positions, cache=cache, mask=prefill_mask(valid))[:, -1]  # [B, V]
    prefix_kv = (cache.k, cache.v)  # compaction copies; these keep every prompt
    first_logits = logits
    # every later column is written by every row, so only the prompt padding is ever invalid
    keys = torch.cat([valid, torch.ones(b, max_new, dtype=torch.bool, device=device)], dim=1)
    lengths = torch.tensor([len(e) for e in prompts], device=device)
    sides = torch.tensor(max_sides if max_sides is not None else [max_side] * b, device=device)
    rows = torch.arange(b, device=device)  # which prompt each active row is
    seq = lengths.clone()  # seq position of the next token
    row = torch.ones(b, dtype=torch.long, device=device)
    col = torch.ones(b, dtype=torch.long, device=device)
    width = torch.zeros(b, dtype=torch.long, device=device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    logp = torch.zeros(b, dtype=torch.float64, device=device)
    out = torch.full((b, max_new), PAD, dtype=torch.long, device=device)
    final_logp = torch.zeros(b, dtype=torch.float64, device=device)
    final_done = torch.zeros(b, dtype=torch.bool, device=device)
    steps = 0
    for t in range(max_new):
        lp = torch.log_softmax(logits + grammar_mask(width, row, col, logits.shape[-1], sides), dim=-1)
        nxt = lp.argmax(dim=-1)  # [B]
        logp += torch.where(done, 0.0, lp.gather(1, nxt[:, None])[:, 0].double())
        out[rows, t] = torch.where(done, PAD, nxt)
        steps = t + 1
        done = done | (nxt == GRID_END)
        if t + 1 == max_new:
            break
        if sync_every and (t + 1) % sync_every == 0:
            n_done = int(done.sum())  # the one host sync, every sync_every steps
            if n_done == len(rows):
                break
            if 2 * n_done >= len(rows):  # compact: keep the unfinished rows
                final_logp[rows], final_done[rows] = logp, done
                keep = (~done).nonzero()[:, 0]
                rows, seq, row, col, width = rows[keep], seq[keep], row[keep], col[keep], width[keep]
                done, logp, nxt, sides, keys = done[keep], logp[keep], nxt[keep], sides[keep], keys[keep]
                cache.k, cache.v = cache.k[:, keep], cache.v[:, keep]
        # [B, 1, 3]: the position of token nxt (an output cell: no grid size, so no symmetry frame)
        pos = torch.stack([seq, row, col], dim=-1)[:, None]
        is_row, is_cell = nxt == ROW, nxt < N_COLORS
        width = torch.where(is_row & (width == 0), col - 1, width)
        row = row + is_row.long()
        col = torch.where(is_row, torch.ones_like(col), col + is_cell.long())
        seq = seq + 1
        mask = keys[:, None, None, : cache.length + 1]  # [B, 1, 1, keys]
        logits = model(nxt[:, None], pos, cache=cache, mask=mask)[:, -1]
    final_logp[rows], final_done[rows] = logp, done
    emitted = out[:, :steps].cpu().numpy()
    ended = final_done.cpu().numpy()
    sums = final_logp.cpu().numpy()
    res = []
    for i in range(b):
        toks = [int(x) for x in emitted[i]]
        if ended[i]:
            toks = toks[: toks.index(GRID_END)]
        res.append(Decoded(parse_grid_tokens(toks) if ended[i] else None, float(sums[i]), toks))
    if keep_prefix:
        kept = KVCache.__new__(KVCache)
        kept.k, kept.v, kept.length = prefix_kv[0], prefix_kv[1], p  # later writes go after the prompts
        return res, Prefix(kept, valid, lengths, first_logits)
    return res


def _body(grid: Grid, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens ``[n]`` of a grid's body + GRID_END, their positions ``[n, POS_DIMS]`` from seq ``start``, and the
    grammar state ``[n, 3]`` (width, row, col) before each token."""
    toks, rc = grid_tokens(grid)
    body, body_rc = toks[1:], rc[1:]
    n = len(body)
    pos = widen(body_rc, np.arange(start, start + n))
    h, w = grid.shape
    r = np.concatenate([np.repeat(np.arange(1, h + 1), w + 1), [h + 1]])
    c = np.concatenate([np.tile(np.arange(1, w + 2), h), [1]])
    state = np.stack([np.where(r == 1, 0, w), r, c], 1)
    return body, pos, state


@torch.no_grad()
def score_with_prefix(model: ArcTransformer, prefix: Prefix, rows: list[int], grids: list[Grid], *,
                      max_side: int = MAX_SIDE, chunk: int = 64) -> list[float]:
    """Summed log-probability of ``grids[i]`` after prompt ``rows[i]`` of a decoded batch (grammar applied),
    reading the prompts from the kept cache: only the candidates' tokens are computed."""
    device = prefix.valid.device
    out: list[float] = []
    cache_len = prefix.cache.length
    for s0 in range(0, len(rows), chunk):
        rs, gs = rows[s0 : s0 + chunk], grids[s0 : s0 + chunk]
        idx = torch.tensor(rs, device=device)
        bodies = [_body(g, int(prefix.lengths[r])) for r, g in zip(rs, gs, strict=True)]
        n = max(len(b[0]) for b in bodies)
        m = len(rs)
        tok = np.full((m, n), PAD, np.int64)
        pos = np.zeros((m, n, POS_DIMS), np.int64)
        state = np.zeros((m, n, 3), np.int64)
        state[:, :, 2] = 1
        for i, (t, ps, st) in enumerate(bodies):
            tok[i, : len(t)], pos[i, : len(t)], state[i, : len(t)] = t, ps, st
        tok_t = torch.from_numpy(tok).to(device)
        cache = KVCache.__new__(KVCache)
        cache.k, cache.v = prefix.cache.k[:, idx], prefix.cache.v[:, idx]
        cache.length = cache_len
        causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        mask = torch.cat([prefix.valid[idx][:, None, :].expand(m, n, cache_len), causal.expand(m, n, n)], 2)
        preds = prefix.last_logits[idx][:, None]  # [m, 1, V]: predicts body token 0
        if n > 1:  # body tokens 0..n-2 predict tokens 1..n-1
            logits = model(tok_t[:, :-1], torch.from_numpy(pos[:, :-1]).to(device), cache=cache,
                           mask=mask[:, None, :-1, :-1])
            preds = torch.cat([preds, logits], 1)  # [m, n, V]
        st = torch.from_numpy(state).to(device).reshape(-1, 3)
        gm = grammar_mask(st[:, 0], st[:, 1], st[:, 2], preds.shape[-1], max_side).view(m, n, -1)
        lp = torch.log_softmax(preds + gm, -1).gather(2, tok_t[:, :, None])[:, :, 0].double()
        real = torch.from_numpy(np.array([[j < len(b[0]) for j in range(n)] for b in bodies])).to(device)
        out += lp.masked_fill(~real, 0.0).sum(1).cpu().tolist()
    return out


def candidate_example(prompt: Example, grid: Grid) -> tuple[Example, int]:
    """``prompt`` followed by the body of ``grid`` and GRID_END, and the number of scored tokens."""
    toks, rc = grid_tokens(grid)
    body, body_rc = toks[1:], rc[1:]  # the prompt already ends with GRID_START
    n = len(prompt)
    ex = Example(np.concatenate([prompt.tokens, body]),
                 np.concatenate([prompt.positions, widen(body_rc, np.arange(n, n + len(body)))]),
                 np.zeros(n + len(body), bool), prompt.task_id, prompt.test_index, prompt.n_train)
    return ex, len(body)


@torch.no_grad()
def score_candidates(model: ArcTransformer, pairs: list[tuple[Example, Grid]], *,
                     max_side: int = MAX_SIDE) -> list[float]:
    """Summed log-probability of each ``grid`` after its ``prompt`` (grammar applied, as in decoding), by
    one teacher-forced forward over a left-padded batch."""
    if not pairs:
        return []
    device = next(model.parameters()).device
    exs, counts = zip(*(candidate_example(p, g) for p, g in pairs), strict=True)
    tokens, positions, valid = left_pad(list(exs), device)
    logits = model(tokens, positions, mask=prefill_mask(valid))  # [B, P, V]
    out = []
    for i, (grid, n) in enumerate(zip((g for _, g in pairs), counts, strict=True)):
        h, w = grid.shape
        lg = logits[i, -n - 1 : -1]  # predictions of the n body tokens
        # the grammar state before each body token: line r (1-based), cell c, width known after line 1
        r = torch.arange(1, h + 1, device=device).repeat_interleave(w + 1)
        c = torch.arange(1, w + 2, device=device).repeat(h)
        r, c = torch.cat([r, r.new_tensor([h + 1])]), torch.cat([c, c.new_tensor([1])])
        wid = torch.where(r == 1, 0, w)
        lp = torch.log_softmax(lg + grammar_mask(wid, r, c, lg.shape[-1], max_side), dim=-1)
        tgt = tokens[i, -n:]
        out.append(float(lp.gather(1, tgt[:, None]).double().sum()))
    return out


__all__ = ["MAX_NEW_TOKENS", "MAX_SIDE", "Decoded", "decode_batch", "grammar_mask", "score_candidates"]
