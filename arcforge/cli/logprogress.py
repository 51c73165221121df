"""Progress as plain log lines, for stderr that is not a terminal (CI logs, ``nohup``, pipes).

A line at the start, one after the first item (its rate gives an early ETA), then at most one every
``ARCFORGE_LOG_SECONDS`` (default 30) seconds, and one at the end, each with counts, rate and ETA; training
adds loss and tokens/s (``Heartbeat``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

DEFAULT_SECONDS = 30.0


def log_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("ARCFORGE_LOG_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def fmt_duration(s: float) -> str:
    s = max(0, round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


class PlainProgress:
    """``arcforge.progress.Progress`` that writes a plain line per bar at most every ``interval`` seconds."""

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.interval = log_seconds() if interval is None else interval
        self.clock = clock
        self._bars: dict[str, dict] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _line(self, key: str, final: bool = False) -> None:
        b = self._bars[key]
        now = self.clock()
        el = now - b["t0"]
        done, total = b["done"], b["total"]
        parts = [f"{b['desc']}: {done:,.0f}" + (f"/{total:,.0f} ({done / total:.0%})" if total else "")]
        if b["unit"] == "bytes":
            of = f"/{total / 2**20:,.1f}" if total else ""
            parts[0] = f"{b['desc']}: {done / 2**20:,.1f}{of} MiB"
        if done > 0 and el > 0:
            parts.append(
                f"{el / done:.3g} s/{'MiB' if b['unit'] == 'bytes' else 'item'}"
                if b["unit"] != "bytes"
                else f"{done / el / 2**20:.1f} MiB/s"
            )
            if total and not final:
                parts.append(f"eta {fmt_duration(el / done * (total - done))}")
        parts.append(f"elapsed {fmt_duration(el)}")
        self.stream.write("  ".join(parts) + ("  done" if final else "") + "\n")
        self.stream.flush()
        b["last"] = now

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        self._bars[key] = {
            "desc": description,
            "total": total,
            "done": 0.0,
            "unit": unit,
            "t0": self.clock(),
            "last": -1e18,
        }
        self._line(key)

    def advance(self, key: str, amount: float = 1) -> None:
        if key in self._bars:
            b = self._bars[key]
            first = b["done"] == 0
            b["done"] += amount
            if first and b["total"]:  # the first measured rate: an early estimate of the whole
                self._line(key)
            else:
                self._maybe(key)

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        if key in self._bars:
            b = self._bars[key]
            b["done"] = b["done"] if completed is None else completed
            b["total"] = b["total"] if total is None else total
            self._maybe(key)

    def _maybe(self, key: str) -> None:
        if self.clock() - self._bars[key]["last"] >= self.interval:
            self._line(key)

    def finish(self, key: str) -> None:
        if key in self._bars:
            self._line(key, final=True)
            del self._bars[key]


class Heartbeat:
    """``on_step`` for the training loop: a formatted line when ``interval`` seconds passed since the last."""

    def __init__(
        self,
        fmt: Callable[[dict], str],
        stream: TextIO | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fmt, self.stream, self.clock = fmt, stream or sys.stderr, clock
        self.interval = log_seconds() if interval is None else interval
        self.last = clock()

    def mark(self) -> None:
        """Another line was just printed (a regular log line): the next heartbeat is due from now."""
        self.last = self.clock()

    def __call__(self, rec: dict) -> None:
        if self.clock() - self.last >= self.interval:
            self.stream.write(self.fmt(rec) + "\n")
            self.stream.flush()
            self.mark()
