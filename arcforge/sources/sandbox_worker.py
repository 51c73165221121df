"""The sandbox's worker: run as a script by a fresh interpreter (``python -I``), never imported by arcforge.

Self-contained on purpose (standard library only; numpy only if upstream imports it). It reads framed JSON
requests on stdin and writes framed JSON replies on a private copy of stdout; the real stdout and stderr
go to /dev/null so upstream ``print`` cannot corrupt the channel. Frame: 4-byte big-endian length + JSON.
"""

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import random
import resource
import sys
import types

MAX_ERROR = 300


def _read(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    body = stream.read(int.from_bytes(head, "big"))
    return json.loads(body)


def _write(stream, obj):
    body = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()
    stream.write(len(body).to_bytes(4, "big") + body)
    stream.flush()


class _Anything:
    """What a stubbed module hands out for any name: callable, indexable, attribute-rich, inert."""

    def __getattr__(self, name):
        return _Anything()

    def __call__(self, *args, **kwargs):
        return _Anything()

    def __getitem__(self, key):
        return _Anything()

    def __iter__(self):
        return iter(())


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, stubs):
        self.stubs = stubs

    def _root(self, fullname):
        return fullname.split(".", 1)[0]

    def find_spec(self, fullname, path, target=None):
        if self._root(fullname) in self.stubs:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: _Anything()
        return module

    def exec_module(self, module):
        source = self.stubs.get(module.__name__, "")
        if source:
            exec(compile(source, f"<stub {module.__name__}>", "exec"), module.__dict__)


def _to_json(value, depth=0):
    if depth > 100:
        raise ValueError("result is nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy array or scalar
        return _to_json(value.tolist(), depth + 1)
    if isinstance(value, (list, tuple)):
        return [_to_json(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"result is not JSON-able: {type(value).__name__}")


def _is_grid(arg):
    return isinstance(arg, list) and arg and all(isinstance(r, list) for r in arg)


def _convert_one(a, grid_type):
    if isinstance(a, dict):  # grids one level down too: {"input": grid, "output": grid}
        return {k: _convert_one(v, grid_type) if _is_grid(v) else v for k, v in a.items()}
    if not _is_grid(a):
        return a
    if grid_type == "tuple":
        return tuple(tuple(r) for r in a)
    import numpy as np

    return np.array(a, dtype=int)


def _convert(args, grid_type):
    if grid_type == "list":
        return args
    return [_convert_one(a, grid_type) for a in args]


def _attr(path):
    mod, _, name = path.rpartition(".")
    return sys.modules[mod], name


def _error(e):
    text = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
    return text[:MAX_ERROR]


def _call(req, modules, call_s):
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(used.ru_utime + used.ru_stime + call_s) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
    for path, value in (req.get("reset") or {}).items():
        module, name = _attr(path)
        setattr(module, name, value)
    seed = req.get("seed")
    if seed is not None:
        random.seed(seed)
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed(seed % (1 << 32))
    fn = getattr(modules[req["m"]], req["f"])
    value = _to_json(fn(*_convert(req["a"], req.get("g", "list"))))
    reads = {}
    for path in req.get("read") or ():
        module, name = _attr(path)
        reads[path] = _to_json(getattr(module, name, None))
    return {"ok": True, "v": value, "x": reads}


def main():
    channel = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    requests = sys.stdin.buffer
    setup = _read(requests)
    sys.meta_path.insert(0, _StubFinder(setup["stubs"]))
    sys.path.insert(0, setup["code_dir"])
    modules = {}
    try:
        for name in setup["modules"]:
            modules[name] = importlib.import_module(name)
    except BaseException as e:
        _write(channel, {"ok": False, "e": _error(e)})
        return
    _write(channel, {"ok": True})
    while True:
        req = _read(requests)
        if req is None:
            return
        try:
            reply = _call(req, modules, setup["call_s"])
        except MemoryError:
            _write(channel, {"ok": False, "e": "memory limit", "restart": True})
            return
        except BaseException as e:
            reply = {"ok": False, "e": _error(e)}
        try:
            _write(channel, reply)
        except (TypeError, ValueError) as e:
            _write(channel, {"ok": False, "e": _error(e)})


if __name__ == "__main__":
    main()
