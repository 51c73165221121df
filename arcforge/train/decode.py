"""Batched greedy decoding of output grids, and candidate scoring (teacher forcing) for voting.

Many prompts (every vote transform of a test input, of several tasks) decode as ONE batch:

- rows are sorted by prompt length (longest first) and **prefilled per exact length**: each run of
  equal-length prompts is one causal forward with no mask (SDPA's fused causal kernel; no padding is
  computed, no ``[B, T, T]`` mask is materialized), writing its keys/values straight into its rows of one
  preallocated KV cache, right-aligned at column ``P`` (the longest prompt). Every row then writes the
  same cache column at every step (``KVCache.length`` is a host int: no device->host sync);
- the prefill computes each prompt's last logits only (``model(..., only=last)``: the last layer's queries
  and MLP at that token alone), every token's keys and values still going to the cache;
- a decoding step attends over the cache with a ``[B, 1, 1, keys]`` mask hiding each row's left padding,
  per span of rows (``row_spans``): rows sorted by prompt length skip the padding their span shares;
- positions are explicit per token (``arcforge.train.tokenize``: ``(seq, row, col, ...)``), so the
  right-alignment does not shift them. A generated token gets ``(seq, row, col)`` from the decoder's
  state and its other components from the prompt's last token (the output grid's ``GRID_START``);
- a grammar keeps every row a well-formed grid: colors and ``ROW`` until the first ``ROW`` fixes the width
  ``w`` (at most ``MAX_SIDE`` cells), then exactly ``w`` colors and a ``ROW`` per line, and ``GRID_END``
  only at the start of a line (at most ``MAX_SIDE`` lines). Every finished row is thus a rectangle, and a
  row with side limit ``s`` ends within ``s * (s + 1) + 1`` tokens (the decoding loop's bound);
- each row stops on its own ``GRID_END`` (its later tokens are ignored); the loop ends when every row is
  done, checked on the host every ``sync_every`` steps only, or after ``max_new`` tokens.

All state (``width``, ``row``, ``col``, ``done``, summed log-probs) lives in ``[B]`` device tensors.
``amp=True`` runs the forward passes under bf16 autocast with a bf16 cache (``EvalConfig.amp``).

``score_with_prefix`` is the other half of product-of-experts voting: the summed log-probability of given
output grids after prompts of a decoded batch, reading the prompts from the kept cache (only the
candidates' tokens are computed, every candidate of a prompt in one row). ``score_candidates`` does the same
by full forward passes (the reference the fast path is tested against).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from arcforge.grids import Grid
from arcforge.train.config import MAX_NEW_TOKENS, MAX_SIDE
from arcforge.train.model import ArcTransformer, KVCache, RowSpans
from arcforge.train.tokenize import (
    GRID_END,
    N_COLORS,
    PAD,
    POS,
    POS_DIMS,
    ROW,
    TABLE_SIDE,
    Example,
    frame_lookups,
    grid_tokens,
    input_table,
    next_rc,
    parse_grid_tokens,
)

NEG_INF = float("-inf")
GROW_STEPS = 64  # decoded tokens the cache has room for at first, and after each compaction
PREFILL_TOKENS = 8192  # tokens per prefill forward at most (bounds the activations' memory)
SCORE_TOKENS = 8192  # candidate tokens per re-scoring forward at most
PAD_TO = 32  # prompts are right-padded to a multiple of this in the prefill (few distinct matmul shapes)
MAX_SPANS = 4  # a decoding step's attention is split into at most this many row spans (``row_spans``) ...
SPAN_COST = 512  # ... each costing, besides its keys, about what reading this many more keys costs


@dataclass
class Decoded:
    """One decoded row: the grid (None if ``max_new`` ran out first), the summed log-probability of the
    chosen tokens (GRID_END included), and the emitted tokens (GRID_END excluded)."""

    grid: Grid | None
    logp: float
    tokens: list[int]


def grammar_mask(
    width: Tensor, row: Tensor, col: Tensor, vocab: int, max_side: int | Tensor = MAX_SIDE
) -> Tensor:
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


def max_tokens(side: int) -> int:
    """Most tokens the grammar lets a row emit under side limit ``side`` (GRID_END included)."""
    return side * (side + 1) + 1


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
    return (
        torch.from_numpy(tokens).to(device),
        torch.from_numpy(positions).to(device),
        torch.from_numpy(valid).to(device),
    )


def prefill_mask(valid: Tensor) -> Tensor:
    """``[B, 1, P, P]``: causal, real keys only; a pad query sees itself (keeps its output finite)."""
    p = valid.shape[1]
    causal = torch.ones(p, p, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(p, dtype=torch.bool, device=valid.device)
    return ((causal & valid[:, None, :]) | eye)[:, None]


def output_positions(
    last: np.ndarray, start: int, rc: np.ndarray, tokens: np.ndarray, table: np.ndarray
) -> np.ndarray:
    """Positions ``[n, POS_DIMS]`` of output-grid ``tokens``: seq from ``start``, ``rc [n, 2]`` (row, col),
    (h, w, pair) and the frame evidence from ``last`` (the prompt's last position, the output's GRID_START),
    and the frame lookups of the test input's lookup ``table`` (``tokenize.input_table``) at each token's
    cell and the next."""
    pos = np.zeros((rc.shape[0], POS_DIMS), np.int64)
    pos[:, POS.seq] = np.arange(start, start + rc.shape[0])
    pos[:, POS.rc] = rc
    pos[:, POS.copied] = last[POS.copied]
    pos[:, POS.lookups] = frame_lookups(table, rc, next_rc(tokens, rc))
    pos[:, POS.evidence] = last[POS.evidence]
    return pos


def _autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def _cache_view(k: Tensor, v: Tensor, length: int) -> KVCache:
    """A KVCache over given tensors (views of a larger cache, or gathered rows)."""
    c = KVCache.__new__(KVCache)
    c.k, c.v, c.length = k, v, length
    return c


def padded_length(n: int) -> int:
    """A prompt's length in the prefill: ``n`` rounded up to a multiple of ``PAD_TO``."""
    return -(-n // PAD_TO) * PAD_TO


def ladder(n: int) -> int:
    """The smallest of 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (powers of two and 1.5 times them) >= ``n``."""
    p = 1
    while p < n:
        if p >= 2 and p + p // 2 >= n:
            return p + p // 2
        p *= 2
    return p


def row_spans(
    first: np.ndarray, keys: int, max_spans: int = MAX_SPANS, span_cost: int | None = None
) -> list[tuple[int, int, int]]:
    """Split the rows of a decoding batch into at most ``max_spans`` contiguous ranges ``(r0, r1, c0)``, each
    attending to key columns ``c0`` (its rows' first real key) onwards, so as to read the fewest keys:
    ``sum((r1 - r0) * (keys - c0))`` plus ``span_cost`` per span (default ``SPAN_COST``: what one more
    attention call costs, in key reads). ``first [B]``: each row's first real key column (the decoder's
    rows are sorted by prompt length, so it never decreases); ``keys``: the columns filled."""
    span_cost = SPAN_COST if span_cost is None else span_cost
    n = len(first)
    cuts = [0] + [i for i in range(1, n) if first[i] != first[i - 1]] + [n]  # runs of equal first columns
    m = len(cuts) - 1

    def cost(i: int, j: int) -> int:  # runs i .. j - 1 as one span
        return (cuts[j] - cuts[i]) * (keys - int(first[cuts[i] : cuts[j]].min())) + span_cost

    # best[s][j]: (cheapest cover of runs 0 .. j - 1 by s + 1 spans, the run its last span starts at)
    best = [{j: (cost(0, j), 0) for j in range(1, m + 1)}]
    for s in range(1, min(max_spans, m)):
        best.append(
            {j: min((best[s - 1][i][0] + cost(i, j), i) for i in range(s, j)) for j in range(s + 1, m + 1)}
        )
    last = min(range(len(best)), key=lambda s: best[s][m][0])  # the cheapest number of spans, minus one
    spans, j = [], m
    for s in range(last, -1, -1):
        i = best[s][j][1]
        spans.append((cuts[i], cuts[j], int(first[cuts[i] : cuts[j]].min())))
        j = i
    return spans[::-1]


def _prefill(model: ArcTransformer, prompts: list[Example], cache: KVCache) -> Tensor:
    """Run ``prompts`` (sorted longest first) into ``cache``; returns the logits after each prompt's last
    token ``[B, V]``.

    Each prompt is right-padded to its ``padded_length`` ``n'`` and written to columns ``[P - n', P)`` of
    its row (``P``: the longest padded length), so that every row decodes into column ``P`` onwards; its pad
    keys are masked out afterwards. Prompts of one padded length go through causal forwards with no mask
    (a pad token comes after the real ones, so it changes nothing before it), in power-of-two row counts:
    the same few matmul shapes recur, and oneDNN reuses their kernels (a bf16 matmul of a shape not seen
    before costs ~5 ms here to set up, ten times what it then takes to run)."""
    device = cache.k.device
    lens = [len(e) for e in prompts]
    padded = [padded_length(n) for n in lens]
    p, b = padded[0], len(prompts)
    out = torch.empty(b, model.cfg.vocab_size, device=device)
    r = 0
    while r < b:
        n = padded[r]
        e = r + 1
        while e < b and padded[e] == n:
            e += 1
        k = 1 << (min(e - r, max(1, PREFILL_TOKENS // n)).bit_length() - 1)  # rows in this forward
        tok = np.full((k, n), PAD, np.int64)
        pos = np.zeros((k, n, POS_DIMS), np.int64)
        for i, x in enumerate(prompts[r : r + k]):
            tok[i, : len(x)], pos[i, : len(x)] = x.tokens, x.positions
        for c in (cache.k, cache.v):  # keys left of a prompt are masked, but must be finite (0 x NaN = NaN)
            c[:, r : r + k, :, : p - n] = 0
        view = _cache_view(cache.k[:, r : r + k, :, p - n :], cache.v[:, r : r + k, :, p - n :], 0)
        last = torch.tensor(lens[r : r + k], device=device) - 1
        out[r : r + k] = model(
            torch.from_numpy(tok).to(device), torch.from_numpy(pos).to(device), cache=view, only=last
        )[:, 0]  # [k, V]: only the last token's logits are read
        r += k
    cache.length = p
    return out


@dataclass
class Prefix:
    """The prefilled prompts of a decoded batch, kept to score candidate grids without re-reading the
    prompts. Rows are in the decoder's order (longest prompt first); ``index[r]`` is the row of prompt
    ``r``. ``cache`` is rewound to the prompt length ``P``; ``valid [B, P]`` marks real keys; ``lengths``
    are the prompts' lengths, ``last_pos [B, POS_DIMS]`` their last positions, ``last_logits [B, V]``
    the logits after their last token and ``tables`` their test inputs' lookup tables."""

    cache: KVCache
    valid: Tensor
    lengths: np.ndarray
    last_pos: np.ndarray
    last_logits: Tensor
    index: np.ndarray
    tables: np.ndarray
    amp: bool = False


@dataclass
class _Rows:
    """The rows still in a decoding batch: per row (``[B]`` device tensors unless said) which decoder row it
    is (``rows``), the grammar state (``seq`` position of the next token, 1-based ``row``/``col``, ``width``,
    0 while the first line is open), ``done``, the summed log-probability ``logp`` (float64), its side limit
    ``sides``, what a generated token copies from the prompt's last position (``extra``: (h, w, pair);
    ``evidence``), its test input's lookup ``tables [B, F, S, S]`` and the lookups ``ahead [B, F]`` at the
    cell the next token predicts. ``ar``: 0 .. B - 1; ``first`` (host): each row's first real key column;
    ``keys [B, columns]``: the key columns a row may attend to; ``spans``: ``row_spans`` of ``first``."""

    rows: Tensor
    seq: Tensor
    row: Tensor
    col: Tensor
    width: Tensor
    done: Tensor
    logp: Tensor
    sides: Tensor
    extra: Tensor
    tables: Tensor
    evidence: Tensor
    ar: Tensor
    ahead: Tensor
    first: np.ndarray
    keys: Tensor
    spans: list[tuple[int, int, int]]


@dataclass
class _Emitted:
    """What the decoding loop hands back, per decoder row: the tokens ``out [B, steps_max]`` (PAD after a
    row's GRID_END), and the summed log-probability and done flag of rows that left the batch (written back
    at each compaction and at the end)."""

    out: Tensor
    logp: Tensor
    done: Tensor
    steps: int = 0


def _start_rows(
    ps: list[Example],
    side_list: list[int],
    tables_np: np.ndarray,
    p: int,
    steps_max: int,
    device: torch.device,
) -> tuple[_Rows, Tensor, np.ndarray, np.ndarray]:
    """The decoding state before the first generated token of prompts ``ps`` (prefilled into columns ending
    at ``P = p``), and what a ``Prefix`` keeps of them: ``valid [B, P]`` (real prompt keys), their lengths
    and their last positions."""
    b = len(ps)
    lengths_np = np.array([len(e) for e in ps])
    lengths = torch.from_numpy(lengths_np).to(device)
    first = p - np.array([padded_length(len(e)) for e in ps])  # [B] each row's first real key column
    start = torch.from_numpy(first).to(device)[:, None]
    cols = torch.arange(p, device=device)[None, :]
    valid = (cols >= start) & (cols < start + lengths[:, None])  # [B, P]: real prompt keys
    # every later column is written by every row, so only the prompt padding is ever invalid
    keys = torch.cat([valid, torch.ones(b, steps_max, dtype=torch.bool, device=device)], dim=1)
    last_np = np.stack([e.positions[-1] for e in ps])  # [B, POS_DIMS]: the output's GRID_START
    extra = torch.from_numpy(last_np[:, POS.copied]).to(device)  # (h, w, pair): what the decoder copies ...
    evidence = torch.from_numpy(last_np[:, POS.evidence]).to(device)  # ... and the frame evidence
    tables = torch.from_numpy(tables_np).to(device)  # [B, F, S, S]: the frame lookups' source
    ar = torch.arange(b, device=device)  # 0 .. active rows - 1 (the tables' row index)
    state = _Rows(
        rows=torch.arange(b, device=device),
        seq=lengths.clone(),
        row=torch.ones(b, dtype=torch.long, device=device),
        col=torch.ones(b, dtype=torch.long, device=device),
        width=torch.zeros(b, dtype=torch.long, device=device),
        done=torch.zeros(b, dtype=torch.bool, device=device),
        logp=torch.zeros(b, dtype=torch.float64, device=device),
        sides=torch.tensor(side_list, device=device),
        extra=extra,
        tables=tables,
        evidence=evidence,
        ar=ar,
        ahead=tables[ar, :, 1, 1],  # [B, F]: the lookups at the first generated token's cell, (1, 1)
        first=first,
        keys=keys,
        spans=row_spans(first, p),
    )
    return state, valid, lengths_np, last_np


def _choose(s: _Rows, logits: Tensor, em: _Emitted, t: int) -> Tensor:
    """Step ``t``'s greedy tokens ``[B]`` under the grammar; adds their log-probabilities and records them."""
    lp = torch.log_softmax(logits + grammar_mask(s.width, s.row, s.col, logits.shape[-1], s.sides), dim=-1)
    nxt = lp.argmax(dim=-1)  # [B]
    s.logp += torch.where(s.done, 0.0, lp.gather(1, nxt[:, None])[:, 0].double())
    em.out[s.rows, t] = torch.where(s.done, PAD, nxt)
    em.steps = t + 1
    s.done = s.done | (nxt == GRID_END)
    return nxt


def _compact(s: _Rows, nxt: Tensor, em: _Emitted, cache: KVCache, room: int) -> Tensor:
    """Keep the unfinished rows (and a few finished ones, so that the row count is on the ``ladder`` of
    matmul shapes that oneDNN has seen before), and the key columns some row left still needs: from the
    first real key of any of them up to ``room`` columns past the cache's length. Returns ``nxt`` of the
    rows kept."""
    size = ladder(len(s.rows) - int(s.done.sum()))
    em.logp[s.rows], em.done[s.rows] = s.logp, s.done
    keep = torch.cat([(~s.done).nonzero()[:, 0], s.done.nonzero()[:, 0]])[:size].sort().values
    for name in (
        "rows",
        "seq",
        "row",
        "col",
        "width",
        "done",
        "logp",
        "sides",
        "extra",
        "tables",
        "evidence",
        "ahead",
    ):
        setattr(s, name, getattr(s, name)[keep])
    nxt, s.ar = nxt[keep], s.ar[: len(keep)]
    first = s.first[keep.cpu().numpy()]
    lead = int(first.min())  # first real key of any row left
    end = cache.length + room
    s.keys = s.keys[keep, lead:]
    # whole rows (contiguous copies: a gather along the row dim with sliced columns is ~4x slower), then a
    # view of the columns still needed
    cache.k, cache.v = (c.index_select(1, keep)[:, :, :, lead:end] for c in (cache.k, cache.v))
    cache.length -= lead
    s.first = first - lead
    s.spans = row_spans(s.first, cache.length)
    return nxt


def _host_check(s: _Rows, nxt: Tensor, em: _Emitted, cache: KVCache, room: int) -> Tensor | None:
    """The one host sync: None when every row is done; else ``nxt`` of the rows left, after a compaction
    when at least a quarter of the batch is done (a copy of the cache, paid back within a few steps)."""
    n_done = int(s.done.sum())
    if n_done == len(s.rows):
        return None
    if 4 * ladder(len(s.rows) - n_done) <= 3 * len(s.rows):
        return _compact(s, nxt, em, cache, room)
    return nxt


def _feed(model: ArcTransformer, s: _Rows, nxt: Tensor, cache: KVCache) -> Tensor:
    """Move the grammar state past ``nxt`` and run it through the model: the next logits ``[B, V]``. A
    generated token's position: (seq, row, col) from the state, (h, w, pair) and the evidence copied from
    the prompt, its own lookups where the last step looked ahead, and the lookups at the cell it predicts."""
    top = TABLE_SIDE - 1
    own = s.ahead  # [B, F]: the lookups at nxt's cell, where the last step's `ahead` looked
    here = torch.stack([s.seq, s.row, s.col], dim=-1)
    is_row, is_cell = nxt == ROW, nxt < N_COLORS
    s.width = torch.where(is_row & (s.width == 0), s.col - 1, s.width)
    s.row = s.row + is_row.long()
    s.col = torch.where(is_row, torch.ones_like(s.col), s.col + is_cell.long())
    s.seq = s.seq + 1
    s.ahead = s.tables[s.ar, :, s.row.clamp(max=top), s.col.clamp(max=top)]  # ... at the cell nxt predicts
    # nxt's position, its columns in POS order: place, copied, own and next lookups, evidence
    pos = torch.cat([here, s.extra, own.long(), s.ahead.long(), s.evidence], dim=-1)[:, None]
    mask = RowSpans(s.spans, s.keys[:, None, None, : cache.length + 1])  # [B, 1, 1, keys], read per span
    return model(nxt[:, None], pos, cache=cache, mask=mask, framed_keys=False)[:, -1]  # output cells


def _decode_steps(
    model: ArcTransformer,
    s: _Rows,
    logits: Tensor,
    cache: KVCache,
    em: _Emitted,
    steps_max: int,
    sync_every: int,
) -> None:
    """Greedy steps until every row is done (seen at a host check) or ``steps_max`` tokens; ``em`` gets the
    tokens and, at the end, every row's log-probability and done flag."""
    for t in range(steps_max):
        nxt = _choose(s, logits, em, t)
        if t + 1 == steps_max:
            break
        if (t + 1) % sync_every == 0:
            nxt = _host_check(s, nxt, em, cache, min(steps_max - t, GROW_STEPS))
            if nxt is None:
                break
        logits = _feed(model, s, nxt, cache)
    em.logp[s.rows], em.done[s.rows] = s.logp, s.done


def _results(em: _Emitted, order: np.ndarray) -> list[Decoded]:
    """The decoded rows, back in the prompts' order."""
    emitted = em.out[:, : em.steps].cpu().numpy()
    ended = em.done.cpu().numpy()
    sums = em.logp.cpu().numpy()
    res: list[Decoded] = [None] * len(order)  # type: ignore[list-item]
    for i in range(len(order)):
        toks = [int(x) for x in emitted[i]]
        if ended[i]:
            toks = toks[: toks.index(GRID_END)]
        res[order[i]] = Decoded(parse_grid_tokens(toks) if ended[i] else None, float(sums[i]), toks)
    return res


@torch.no_grad()
def decode_batch(
    model: ArcTransformer,
    prompts: list[Example],
    *,
    max_new: int = MAX_NEW_TOKENS,
    max_side: int = MAX_SIDE,
    max_sides: list[int] | None = None,
    sync_every: int | None = None,
    keep_prefix: bool = False,
    amp: bool = False,
) -> list[Decoded] | tuple[list[Decoded], Prefix]:
    """Greedy-decode the output grid after each prompt (which ends in ``OUTPUT GRID_START``), all rows as
    one batch. Rows are independent: the result of a row does not depend on the others (tested).
    ``max_sides``: a per-row side limit (default ``max_side`` for all). ``keep_prefix``: also return the
    ``Prefix`` for ``score_with_prefix``. ``amp``: bf16 autocast and a bf16 cache.

    At every host check (each ``sync_every`` steps: default every step on a CPU, where reading a flag
    costs nothing, 16 elsewhere) finished rows leave the batch once at least a quarter of it is done (a
    copy of the cache, paid back within a few steps), so long rows do not keep paying for the others;
    key columns that are left padding for every remaining row go too."""
    if not prompts:
        return ([], None) if keep_prefix else []
    device = next(model.parameters()).device
    if sync_every is None:  # reading a CPU tensor costs nothing; on an accelerator it waits for the queue
        sync_every = 1 if device.type == "cpu" else 16
    b = len(prompts)
    order = np.argsort(-np.array([len(e) for e in prompts]), kind="stable")  # decoder row i = prompt order[i]
    ps = [prompts[i] for i in order]
    side_list = [max_sides[i] for i in order] if max_sides is not None else [max_side] * b
    steps_max = max(1, min(max_new, max(max_tokens(s) for s in side_list)))  # the grammar ends every row
    p = padded_length(len(ps[0]))
    # room for GROW_STEPS tokens after the prompts; KVCache doubles it on demand (a rare copy)
    cache = _new_cache(model, b, p + min(steps_max, GROW_STEPS), device, amp)
    # one autocast context for the whole batch: the weights are cast to bf16 once, not at every step
    with _autocast(device, amp):
        logits = _prefill(model, ps, cache)  # [B, V]
        kept = _cache_view(cache.k, cache.v, p)  # compaction copies; this keeps every prompt
        tables_np = np.stack([input_table(e) for e in ps])  # [B, F, S, S]: the frame lookups' source
        state, valid, lengths_np, last_np = _start_rows(ps, side_list, tables_np, p, steps_max, device)
        em = _Emitted(
            torch.full((b, steps_max), PAD, dtype=torch.long, device=device),
            torch.zeros(b, dtype=torch.float64, device=device),
            torch.zeros(b, dtype=torch.bool, device=device),
        )
        _decode_steps(model, state, logits, cache, em, steps_max, sync_every)
    res = _results(em, order)
    if not keep_prefix:
        return res
    index = np.empty(b, np.int64)
    index[order] = np.arange(b)
    return res, Prefix(kept, valid, lengths_np, last_np, logits, index, tables_np, amp)


def _new_cache(model: ArcTransformer, rows: int, length: int, device: torch.device, amp: bool) -> KVCache:
    """An empty cache for ``rows`` rows of ``length`` tokens, bf16 with ``amp`` (``_prefill`` zeroes the left
    padding, so it is not zeroed here)."""
    cfg, dtype = model.cfg, next(model.parameters()).dtype
    return KVCache(
        cfg.n_layers,
        rows,
        cfg.n_heads,
        cfg.head_dim,
        length,
        device,
        torch.bfloat16 if amp else dtype,
        zeroed=False,
    )


def _body(grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens ``[n]`` of a grid's body + GRID_END, their (row, col) ``[n, 2]``, and the grammar state
    ``[n, 3]`` (width, row, col) before each token."""
    toks, rc = grid_tokens(grid)
    h, w = grid.shape
    r = np.concatenate([np.repeat(np.arange(1, h + 1), w + 1), [h + 1]])
    c = np.concatenate([np.tile(np.arange(1, w + 2), h), [1]])
    state = np.stack([np.where(r == 1, 0, w), r, c], 1)
    return toks[1:], rc[1:], state


@dataclass
class _Packed:
    """Candidates packed into rows, one row per prompt: ``tok``, ``pos``, the grammar ``state`` (width, row,
    col) before each token, ``seg`` (which candidate a slot holds, -1 for padding) and ``first`` (a
    candidate's first token: predicted from the prompt's last logits)."""

    tok: np.ndarray
    pos: np.ndarray
    state: np.ndarray
    seg: np.ndarray
    first: np.ndarray


def _pack_candidates(
    prefix: Prefix,
    rs: list[int],
    per_row: dict[int, list[int]],
    bodies: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    t: int,
) -> _Packed:
    """Decoder rows ``rs``' candidates (``per_row``: candidate indices into ``bodies``) one after the other
    in ``[len(rs), t]`` rows."""
    m = len(rs)
    tok = np.full((m, t), PAD, np.int64)
    pos = np.zeros((m, t, POS_DIMS), np.int64)
    state = np.zeros((m, t, 3), np.int64)
    state[:, :, 2] = 1
    seg = np.full((m, t), -1, np.int64)  # which candidate a slot holds (-1: padding)
    first = np.zeros((m, t), bool)  # a candidate's first token: predicted from the prompt's last logits
    for i, r in enumerate(rs):
        o = 0
        for q in per_row[r]:
            tk, rc, st = bodies[q]
            k = len(tk)
            tok[i, o : o + k], state[i, o : o + k], seg[i, o : o + k] = tk, st, q
            pos[i, o : o + k] = output_positions(
                prefix.last_pos[r], int(prefix.lengths[r]), rc, tk, prefix.tables[r]
            )
            first[i, o] = True
            o += k
    return _Packed(tok, pos, state, seg, first)


def _score_chunk(
    model: ArcTransformer, prefix: Prefix, rs: list[int], c: _Packed, max_side: int, out: Tensor
) -> None:
    """One forward over packed rows ``rs`` after a copy of their prompts' keys/values (a block-causal mask:
    each candidate sees the prompt and its own earlier tokens); adds each token's log-probability (grammar
    applied) to its candidate's entry of ``out``."""
    device = prefix.valid.device
    p = prefix.cache.length
    k0, v0 = prefix.cache.k, prefix.cache.v
    m, t = c.tok.shape
    idx = torch.tensor(rs, device=device)
    tok_t, seg_t = torch.from_numpy(c.tok).to(device), torch.from_numpy(c.seg).to(device)
    causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()
    own = (seg_t[:, :, None] == seg_t[:, None, :]) & causal  # [m, t, t]
    mask = torch.cat([prefix.valid[idx][:, None, :].expand(m, t, p), own], 2)[:, None]
    kk = k0.new_empty((k0.shape[0], m, k0.shape[2], p + t, k0.shape[4]))  # [L, m, H, P + t, Dh]
    vv = torch.empty_like(kk)
    kk[:, :, :, :p], vv[:, :, :, :p] = k0[:, idx, :, :p], v0[:, idx, :, :p]
    with _autocast(device, prefix.amp):
        logits = model(tok_t, torch.from_numpy(c.pos).to(device), cache=_cache_view(kk, vv, p), mask=mask)
    last = prefix.last_logits[idx][:, None]  # [m, 1, V]
    shifted = torch.cat([last, logits[:, :-1]], 1)  # slot j is predicted by slot j - 1 ...
    preds = torch.where(torch.from_numpy(c.first).to(device)[:, :, None], last, shifted)  # ... or the prompt
    st = torch.from_numpy(c.state).to(device).reshape(-1, 3)
    gm = grammar_mask(st[:, 0], st[:, 1], st[:, 2], preds.shape[-1], max_side).view(m, t, -1)
    lp = torch.log_softmax(preds + gm, -1).gather(2, tok_t[:, :, None])[:, :, 0].double()
    real = seg_t >= 0
    out.index_add_(0, seg_t[real], lp[real])


@torch.no_grad()
def score_with_prefix(
    model: ArcTransformer,
    prefix: Prefix,
    rows: list[int],
    grids: list[Grid],
    *,
    max_side: int = MAX_SIDE,
    chunk: int = 64,
) -> list[float]:
    """Summed log-probability of ``grids[i]`` after prompt ``rows[i]`` of a decoded batch (grammar applied),
    reading the prompts from the kept cache: only the candidates' tokens are computed.

    All candidates of one prompt go into one row one after the other, each seeing the prompt and its own
    earlier tokens only (a block-causal mask, as packed training rows). Rows are sorted by their candidates'
    total length and scored ``chunk`` at a time (fewer for long ones, at most ``SCORE_TOKENS`` tokens per
    forward), each chunk with a copy of its rows' prompt keys/values: outputs of very different sizes do
    not pad each other (a copy costs far less than the padding it saves)."""
    if not rows:
        return []
    at = prefix.index[np.asarray(rows)]  # decoder rows
    bodies = [_body(g) for g in grids]
    per_row: dict[int, list[int]] = {}
    for q, r in enumerate(at):
        per_row.setdefault(int(r), []).append(q)
    total = {r: sum(len(bodies[q][0]) for q in qs) for r, qs in per_row.items()}
    order = sorted(per_row, key=lambda r: -total[r])
    out = torch.zeros(len(rows), dtype=torch.float64, device=prefix.valid.device)
    c0 = 0
    while c0 < len(order):
        t = total[order[c0]]
        rs = order[c0 : c0 + max(1, min(chunk, SCORE_TOKENS // t))]
        c0 += len(rs)
        _score_chunk(model, prefix, rs, _pack_candidates(prefix, rs, per_row, bodies, t), max_side, out)
    return out.cpu().tolist()


def candidate_example(prompt: Example, grid: Grid) -> tuple[Example, int]:
    """``prompt`` followed by the body of ``grid`` and GRID_END, and the number of scored tokens."""
    toks, rc = grid_tokens(grid)
    body, body_rc = toks[1:], rc[1:]  # the prompt already ends with GRID_START
    n = len(prompt)
    ex = Example(
        np.concatenate([prompt.tokens, body]),
        np.concatenate(
            [prompt.positions, output_positions(prompt.positions[-1], n, body_rc, body, input_table(prompt))]
        ),
        np.zeros(n + len(body), bool),
        prompt.task_id,
        prompt.test_index,
        prompt.n_train,
    )
    return ex, len(body)


@torch.no_grad()
def score_candidates(
    model: ArcTransformer, pairs: list[tuple[Example, Grid]], *, max_side: int = MAX_SIDE
) -> list[float]:
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
        lg = logits[i, -n - 1 : -1]  # predictions of the n body tokens
        st = torch.from_numpy(_body(grid)[2]).to(device)  # the grammar state before each body token
        lp = torch.log_softmax(
            lg + grammar_mask(st[:, 0], st[:, 1], st[:, 2], lg.shape[-1], max_side), dim=-1
        )
        tgt = tokens[i, -n:]
        out.append(float(lp.gather(1, tgt[:, None]).double().sum()))
    return out


__all__ = [
    "MAX_NEW_TOKENS",
    "MAX_SIDE",
    "Decoded",
    "Prefix",
    "decode_batch",
    "grammar_mask",
    "max_tokens",
    "score_candidates",
    "score_with_prefix",
]
