"""The device a run uses and what it can do now: ``pick_device`` (auto, cpu, cuda:N), whether bf16 autocast
runs (``use_bf16``, ``autocast_for``), the CPUs free for torch threads, and the memory available.

Measured on a 2-core AVX512 CPU without AMX/AVX512-BF16 (benchmarks/bench_amp.py): emulated bf16 autocast
is 2x slower than fp32, and 2 torch threads with one core busy elsewhere are 4.8x slower than 1 thread.
Hence ``--amp auto`` never turns on bf16 where the CPU has no native bf16 instructions, and the default
thread count is the CPUs this process may use minus the load already running on the machine.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from arcforge.errors import TrainError
from arcforge.train.config import Amp

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags (``flags`` line of /proc/cpuinfo; empty where there is none)."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(flags: set[str] | None = None) -> bool:
    """True where the CPU computes bf16 natively (AMX or AVX512-BF16), not by emulation."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs granted by a cgroup v2 quota (``cpu.max``: ``QUOTA PERIOD``), None when unlimited/unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cpu_jiffies(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, total) time of all CPUs since boot, from the ``cpu`` line of /proc/stat (None elsewhere)."""
    try:
        f = stat.read_text().split("\n", 1)[0].split()
        if f[0] != "cpu":
            return None
        v = [int(x) for x in f[1:9]]  # user nice system idle iowait irq softirq steal (guests are in user)
    except (OSError, ValueError, IndexError):
        return None
    return sum(v) - v[3] - v[4], sum(v)


def busy_cpus_now(window: float = 0.3) -> float | None:
    """CPUs kept busy by *other* processes over the next ``window`` seconds (/proc/stat, less this process's
    own CPU time), or None where /proc/stat is not readable. Unlike the load average, it does not remember a
    job that ended a minute ago (such as the demo's own build workers)."""
    a, own = _cpu_jiffies(), time.process_time()
    if a is None:
        return None
    time.sleep(window)
    b, own = _cpu_jiffies(), time.process_time() - own
    if b is None or b[1] <= a[1]:
        return None
    busy = (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)
    return max(0.0, busy - own / window)


def free_cpus(
    *,
    affinity: int | None = None,
    load: float | None = None,
    total: int | None = None,
    quota: float | None = None,
) -> int:
    """CPUs free for this process's threads: those it may run on (affinity, cgroup quota), less the load of
    the others -- the 1-minute load average, or what is busy right now if that is less (a job that just
    ended still weighs on the average for a minute) -- at least 1. Arguments override what is read from
    the system."""
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    total = total or os.cpu_count() or affinity
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
        now = busy_cpus_now() if load >= 0.5 else None  # only when the average alone would cost a thread
        if now is not None:
            load = min(load, now)
    quota = _cgroup_cpus() if quota is None else quota
    usable = float(affinity) if quota is None else min(float(affinity), quota)
    idle = total - load  # CPUs of the whole machine not running anything (last minute, or now)
    return max(1, min(int(usable), math.floor(idle + 0.5)))


def machine_cpus() -> int:
    """The logical CPUs of this machine: the most threads or loader workers an option may ask for."""
    return os.cpu_count() or 1


def check_cpus(option: str, requested: int) -> int:
    """``requested`` when this machine has that many CPUs; else a ``TrainError`` naming ``option`` (torch
    aborts on tens of thousands of threads, and a thousand loader processes never start in time)."""
    top = machine_cpus()
    if requested > top:
        raise TrainError(
            f"{option} {requested}: this machine has {top} CPU{'s' if top != 1 else ''}",
            hint=f"use {option} 0 (the CPUs free now) or at most {top}",
        )
    return requested


def choose_threads(requested: int = 0, option: str = "--threads") -> int:
    """``requested`` if > 0 (at most the machine's CPUs), else the CPUs free now."""
    return check_cpus(option, requested) if requested > 0 else free_cpus()


def bf16_faster(d: int = 256, rows: int = 512, repeats: int = 5) -> bool:
    """A short probe (~0.2 s): is a bf16-autocast linear layer's forward+backward clearly (> 1.25x) faster
    than fp32 here, with the current torch thread count?"""
    with torch.inference_mode(False), torch.enable_grad():  # also when called while decoding (no_grad)
        return _bf16_faster(d, rows, repeats)


def _bf16_faster(d: int, rows: int, repeats: int) -> bool:
    lin = torch.nn.Linear(d, 4 * d)
    x = torch.randn(rows, d, requires_grad=True)

    def timed(bf16: bool) -> float:
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = lin(x)
            y.float().sum().backward()
            best = min(best, time.perf_counter() - t0)
        return best

    timed(False), timed(True)  # warm up both paths
    return timed(True) < 0.8 * timed(False)


def cpu_bf16_auto(flags: set[str] | None = None) -> bool:
    """``--amp auto`` on a CPU: bf16 only with native bf16 instructions AND a probe measuring it faster.
    Decided once per process and thread count (a run keeps its choice; checkpoints record it)."""
    if not native_bf16(flags):
        return False
    return _probe(torch.get_num_threads())


@functools.cache
def _probe(threads: int) -> bool:
    return bf16_faster()


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Bytes of memory available to new allocations now (``MemAvailable``), None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def use_free_cpus(requested: int = 0) -> int:
    """Set torch's CPU threads to ``requested`` (> 0) or the CPUs free now; returns the count."""
    n = choose_threads(requested)
    torch.set_num_threads(n)
    return n


def use_bf16(device: torch.device, amp: str) -> bool:
    """Whether bf16 autocast runs: ``off`` never, ``bf16`` always, ``auto`` on CUDA (where supported) and on
    a CPU only with native bf16 that a short probe measures faster (``cpu_bf16_auto``): emulated bf16
    is 2x slower than fp32 there."""
    try:
        amp = Amp(amp)
    except ValueError:
        raise TrainError(
            f"unknown amp mode {amp!r}", hint=f"use one of {', '.join(a.value for a in Amp)}"
        ) from None
    if amp != Amp.auto:
        return amp == Amp.bf16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_bf16_auto()


def autocast_for(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """The forward pass's autocast (weights and optimizer stay fp32); see ``use_bf16``."""
    if not use_bf16(device, amp):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def pick_device(name: str) -> torch.device:
    """``auto`` -> the local GPU when there is one, else the CPU. A CUDA device on a torch without CUDA, or
    one that does not exist, is a ``TrainError`` in one line."""
    if name == "auto":
        if dist.is_initialized() and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise TrainError(f"--device {name!r}: not a device", hint="use auto, cpu, cuda or cuda:N") from None
    if dev.type == "mps" and not (torch.backends.mps.is_built() and torch.backends.mps.is_available()):
        raise TrainError(
            f"--device {name}: this torch ({torch.__version__}) has no usable MPS (Apple GPU) backend",
            hint="use --device cpu or auto",
        )
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise TrainError(
                f"--device {name}: this torch ({torch.__version__}) is built without CUDA",
                hint="use --device cpu, or install a CUDA build of torch",
            )
        if not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count():
            raise TrainError(
                f"--device {name}: no such CUDA GPU is visible ({torch.cuda.device_count()} found)",
                hint="use --device cpu or auto",
            )
    return dev
