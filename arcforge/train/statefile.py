"""Training state as data, never as code: a nested state (optimizer, Grokfast, RNG, data positions) is
split into a JSON tree and a flat set of tensors stored with safetensors, and read back strictly.

Nothing read here can run code (no pickle): the JSON tree holds only plain values and tagged nodes,

- ``{"$t": "k"}``: the tensor stored under key ``k`` in the safetensors file;
- ``{"$a": dtype, "v": [...]}``: a small numpy array (the numpy RNG state), ``dtype`` from a fixed list;
- ``{"$tuple": [...]}``: a tuple; ``{"$map": [[key, value], ...]}``: a dict with non-string keys;
- ``{"$dict": {...}}``: a dict whose own keys start with ``$`` (never confused with a tag);

and anything else in the file (an unknown tag, a missing tensor, a value of another type) is a
``TrainError`` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from arcforge.errors import TrainError

_ARRAY_DTYPES = ("uint32", "int64", "float64")
_TAGS = ("$t", "$a", "$tuple", "$map", "$dict")


def flatten(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(tree, tensors)``: ``state`` as JSON-ready data with every tensor replaced by a reference."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            key = str(len(tensors))
            tensors[key] = x.detach().to("cpu").contiguous()
            return {"$t": key}
        if isinstance(x, np.ndarray):
            if x.dtype.name not in _ARRAY_DTYPES:
                raise TypeError(f"cannot store a numpy array of {x.dtype}")
            return {"$a": x.dtype.name, "v": x.tolist()}
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, tuple):
            return {"$tuple": [enc(v) for v in x]}
        if isinstance(x, list):
            return [enc(v) for v in x]
        if isinstance(x, dict):
            if all(isinstance(k, str) for k in x):
                d = {k: enc(v) for k, v in x.items()}
                return {"$dict": d} if any(k.startswith("$") for k in x) else d
            return {"$map": [[enc(k), enc(v)] for k, v in x.items()]}
        if x is None or isinstance(x, bool | int | float | str):
            return x
        raise TypeError(f"cannot store a {type(x).__name__} in a checkpoint's state")

    return enc(state), tensors


def unflatten(tree: Any, tensors: dict[str, torch.Tensor], where: Path) -> Any:
    """The state ``flatten`` split; a ``TrainError`` naming ``where`` for anything it would not write."""
    return _Reader(tensors, where).value(tree)


class _Reader:
    def __init__(self, tensors: dict[str, torch.Tensor], where: Path) -> None:
        self.tensors, self.where = tensors, where

    def bad(self, why: str) -> TrainError:
        return TrainError(f"{self.where}: damaged checkpoint file ({why})")

    def value(self, x: Any) -> Any:
        if isinstance(x, list):
            return [self.value(v) for v in x]
        if isinstance(x, dict):
            tags = [k for k in x if k in _TAGS]
            return self.tagged(x, tags[0]) if tags else {k: self.value(v) for k, v in x.items()}
        if x is None or isinstance(x, bool | int | float | str):
            return x
        raise self.bad(f"unexpected {type(x).__name__}")

    def tagged(self, x: dict, tag: str) -> Any:
        """The value of a tagged entry (``_TAGS``), or a ``TrainError`` if not what ``flatten`` writes."""
        v = x[tag]
        if tag == "$t":
            return self.tensor(v)
        if tag == "$a":
            return self.array(v, x.get("v"))
        if tag == "$tuple" and isinstance(v, list):
            return tuple(self.value(e) for e in v)
        if tag == "$map" and isinstance(v, list) and all(isinstance(e, list) and len(e) == 2 for e in v):
            return self.mapping(v)
        if tag == "$dict" and isinstance(v, dict):
            return {k: self.value(e) for k, e in v.items()}
        raise self.bad(f"a malformed {tag} entry")

    def tensor(self, name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise self.bad(f"refers to a tensor {name!r} that is not stored")
        return self.tensors[name]

    def mapping(self, pairs: list[list]) -> dict:
        try:
            return {self.value(k): self.value(e) for k, e in pairs}
        except TypeError:  # an unhashable key
            raise self.bad("a mapping with an unusable key") from None

    def array(self, dtype: Any, values: Any) -> np.ndarray:
        if dtype not in _ARRAY_DTYPES or not isinstance(values, list):
            raise self.bad(f"an array of {dtype!r}")
        try:
            return np.asarray(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            raise self.bad("an array that does not fit its type") from None
