"""Hub calls that cannot hold arcforge, and answers that cannot crash it.

- ``bounded``: a call in a daemon thread, given up after a total deadline (a socket that trickles, retries
  with backoff, a call that overrides the client's timeout with none: none of them can hold arcforge);
- ``watched``: a download given up once no byte has arrived for a while (a deadline that counts bytes,
  so a large download is never cut while it progresses);
- ``harness_cache_problem``: huggingface_hub caches the Hub's agent-harness registry in
  ``$HF_HOME/.agent_harnesses.json`` and uses it for every request's headers; a damaged one (a bad answer
  that was cached) makes every request fail, so it is named with how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from arcforge.errors import PublishError

T = TypeVar("T")


def harness_cache_problem() -> PublishError | None:
    """huggingface_hub's cached agent-harness registry, when it is damaged (it breaks every request)."""
    from huggingface_hub import constants

    path = Path(getattr(constants, "AGENT_HARNESSES_PATH", "") or "")
    if not path.name or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = (
            isinstance(data, dict)
            and isinstance(data.get("standardEnvVars", []), list)
            and all(isinstance(v, str) for v in data.get("standardEnvVars", []))
            and isinstance(data.get("harnesses", {}), dict)
            and all(
                isinstance(v, dict | None) and isinstance((v or {}).get("envVars", {}), dict | None)
                for v in data.get("harnesses", {}).values()
            )
        )
    except (OSError, ValueError):
        ok = False
    if ok:
        return None
    return PublishError(
        f"{path}: huggingface_hub's cached agent-harness registry is damaged (a bad answer "
        "from the Hub was cached), so every Hub request fails",
        hint=f"delete that file (rm {path}); huggingface_hub fetches it again",
    )


class CallDeadline(Exception):
    """A Hub call ran past its total deadline (it may still be running in its thread)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:g} s")
        self.seconds = seconds


def _start(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """``fn()`` running in a daemon thread; its value or error lands in the box."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name="arcforge-hub", daemon=True)
    worker.start()
    return worker, box


def _result(box: dict[str, Any]) -> Any:
    if "error" in box:
        raise box["error"]
    return box["value"]


def bounded(fn: Callable[[], T], seconds: float) -> T:
    """``fn()`` given up after ``seconds`` (it may go on in its daemon thread; nothing waits for it)."""
    worker, box = _start(fn)
    worker.join(seconds)
    if worker.is_alive():
        raise CallDeadline(seconds)
    return _result(box)


def received(folder: Path) -> int:
    """Bytes of every file under ``folder`` (what a download into it has written so far)."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def watched(fn: Callable[[], T], folder: Path, stall: float) -> T:
    """``fn()`` (a download into ``folder``) in a daemon thread, given up once no byte has arrived in
    ``folder`` for ``stall`` seconds: a deadline that counts bytes, so a large download is never cut
    while it progresses, and a silent or trickling-nothing Hub is."""
    worker, box = _start(fn)
    seen, since = -1, time.monotonic()
    while worker.is_alive():
        worker.join(0.25)
        now_bytes = received(folder)
        if now_bytes != seen:
            seen, since = now_bytes, time.monotonic()
        elif time.monotonic() - since > stall:
            raise CallDeadline(stall)
    return _result(box)
