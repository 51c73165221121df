"""Grokfast gradient filters (Lee et al. 2024, arXiv 2405.20233): amplify the slow gradient component.

Both filters of the paper, with the update rules of its reference code:

- EMA: ``mu <- alpha * mu + (1 - alpha) * g`` (``mu`` starts at the first gradient), then
  ``g <- g + lamb * mu``.
- MA: keep the last ``window`` gradients; ``g <- g + lamb * mean(last window gradients, g included)``. With
  ``warmup=True`` the filter only acts once ``window`` gradients are collected (the reference code's default
  and what its experiments use); with ``warmup=False`` it averages whatever is there from step one.

Defaults: ``GrokfastConfig``'s (the filter functions too), ``kind="none"``, ``alpha=0.98, lamb=2.0`` (the
paper's EMA setting), MA ``window=100`` with the same ``lamb`` (the paper uses ``lamb=5`` for MA; set it
explicitly), ``warmup=False``. Memory: EMA keeps one extra copy of every parameter, MA keeps ``window``
copies (plus a running sum), so MA is for small models.

Where to call it: after ``loss.backward()`` (after the DDP all-reduce, so every rank filters the same
gradient and the state stays identical) and after ``GradScaler.unscale_``, before gradient clipping and
``optimizer.step()``. It works in place on ``p.grad`` and skips parameters whose grad is None (their state
is left as is). If a gradient is inf/NaN, the loop skips the optimizer step and the filter update too:
``Grokfast.step(skip_if_nonfinite=True)`` checks, leaves grads and state untouched, and returns False.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from arcforge.errors import TrainError
from arcforge.train.config import GrokfastConfig

ParamsLike = Iterable[nn.Parameter] | Iterable[tuple[str, nn.Parameter]]


def _named(params: ParamsLike) -> list[tuple[str, nn.Parameter]]:
    # accept Parameters (keyed by position) or (name, Parameter) pairs (keyed by name)
    out = []
    for i, item in enumerate(params):
        out.append((str(item[0]), item[1]) if isinstance(item, tuple) else (str(i), item))
    return out


def _state_dtype(g: Tensor) -> torch.dtype:
    # keep filter state in float32 when grads are half precision
    return torch.float32 if g.dtype in (torch.float16, torch.bfloat16) else g.dtype


def gradfilter_ema(
    params: ParamsLike,
    state: dict | None,
    alpha: float = GrokfastConfig.alpha,
    lamb: float = GrokfastConfig.lamb,
) -> dict:
    """One EMA filter step on ``p.grad`` (in place); returns the updated ``state`` {key: ema tensor}.

    ``params``: Parameters or (name, Parameter) pairs; a parameter whose grad is None is skipped.
    """
    state = {} if state is None else state
    for key, p in _named(params):
        g = p.grad
        if g is None:
            continue
        gd = g.detach()
        mu = state.get(key)
        if mu is None:
            mu = state[key] = gd.to(_state_dtype(gd), copy=True)  # alpha*g + (1-alpha)*g = g
        else:
            mu.mul_(alpha).add_(gd.to(mu.dtype), alpha=1.0 - alpha)
        gd.add_(mu.to(gd.dtype), alpha=lamb)
    return state


def gradfilter_ma(
    params: ParamsLike,
    state: dict | None,
    window: int = GrokfastConfig.window,
    lamb: float = GrokfastConfig.lamb,
    warmup: bool = GrokfastConfig.warmup,
) -> dict:
    """One MA filter step on ``p.grad`` (in place); returns the updated ``state``.

    ``state[key] = {"buf": [window, *shape] ring of past grads, "pos": next slot, "count": filled slots,
    "sum": running sum of the filled slots}``. The running sum is recomputed exactly every time the ring
    wraps, so float drift stays bounded.
    """
    state = {} if state is None else state
    for key, p in _named(params):
        g = p.grad
        if g is None:
            continue
        gd = g.detach()
        st = state.get(key)
        if st is None:
            dt = _state_dtype(gd)
            st = state[key] = {
                "buf": torch.zeros((window, *gd.shape), dtype=dt, device=gd.device),
                "pos": 0,
                "count": 0,
                "sum": torch.zeros_like(gd, dtype=dt),
            }
        buf, pos = st["buf"], st["pos"]
        if st["count"] == window:
            st["sum"].sub_(buf[pos])
        buf[pos].copy_(gd)
        st["sum"].add_(buf[pos])
        st["count"] = min(st["count"] + 1, window)
        st["pos"] = (pos + 1) % window
        if st["pos"] == 0:
            torch.sum(buf, dim=0, out=st["sum"])  # exact resync once per wrap
        if not warmup or st["count"] == window:
            gd.add_((st["sum"] / st["count"]).to(gd.dtype), alpha=lamb)
    return state


class Grokfast:
    """The stateful filter the training loop uses: ``step()`` between backward and ``optimizer.step()``."""

    def __init__(
        self, model_or_named_params: nn.Module | Iterable[tuple[str, nn.Parameter]], cfg: GrokfastConfig
    ) -> None:
        if isinstance(model_or_named_params, nn.Module):
            named = [(n, p) for n, p in model_or_named_params.named_parameters() if p.requires_grad]
        else:
            named = [(n, p) for n, p in model_or_named_params if p.requires_grad]
        self.params = named
        self.cfg = cfg
        self.state: dict[str, Any] = {}
        self.steps = 0  # filter updates applied

    @property
    def enabled(self) -> bool:
        return self.cfg.kind != "none"

    def grads_finite(self) -> bool:
        """True when every existing gradient is finite (one device sync)."""
        grads = [p.grad.detach() for _, p in self.params if p.grad is not None]
        if not grads:
            return True
        return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all().item())

    def step(self, skip_if_nonfinite: bool = True) -> bool:
        """Filter the gradients in place. Returns False (nothing changed) when the filter is off or, with
        ``skip_if_nonfinite``, when a gradient is inf/NaN (the loop should then skip the optimizer step)."""
        if not self.enabled:
            return False
        if skip_if_nonfinite and not self.grads_finite():
            return False
        c = self.cfg
        if c.kind == "ema":
            gradfilter_ema(self.params, self.state, alpha=c.alpha, lamb=c.lamb)
        else:
            gradfilter_ma(self.params, self.state, window=c.window, lamb=c.lamb, warmup=c.warmup)
        self.steps += 1
        return True

    def state_dict(self) -> dict:
        """Everything needed to continue identically: config, step count, and per-parameter tensors."""
        c = self.cfg
        cfg = {"kind": str(c.kind), "alpha": c.alpha, "lamb": c.lamb, "window": c.window, "warmup": c.warmup}
        if c.kind == "ma":
            st = {
                k: {"buf": v["buf"].clone(), "pos": v["pos"], "count": v["count"], "sum": v["sum"].clone()}
                for k, v in self.state.items()
            }
        else:
            st = {k: v.clone() for k, v in self.state.items()}
        return {"config": cfg, "steps": self.steps, "state": st}

    def load_state_dict(self, d: dict) -> None:
        """Restore from ``state_dict()``; the config must match (a changed filter would not continue)."""
        c = self.cfg
        mine = {"kind": str(c.kind), "alpha": c.alpha, "lamb": c.lamb, "window": c.window, "warmup": c.warmup}
        if d.get("config") != mine:
            raise TrainError(
                f"Grokfast state was saved with {d.get('config')}, this run uses {mine}",
                hint="resume with the same --grokfast settings",
            )
        names = {n for n, _ in self.params}
        unknown = set(d["state"]) - names
        if unknown:
            raise TrainError(f"Grokfast state has unknown parameters: {sorted(unknown)[:5]}")
        devices = {n: p.device for n, p in self.params}
        if c.kind == "ma":
            self.state = {
                k: {
                    "buf": v["buf"].to(devices[k]).clone(),
                    "pos": int(v["pos"]),
                    "count": int(v["count"]),
                    "sum": v["sum"].to(devices[k]).clone(),
                }
                for k, v in d["state"].items()
            }
        else:
            self.state = {k: v.to(devices[k]).clone() for k, v in d["state"].items()}
        self.steps = int(d["steps"])
