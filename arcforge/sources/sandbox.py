"""Run upstream code (RE-ARC's generators, BARC's seeds) apart from arcforge, with limits.

``Sandbox(code_dir, modules, limits, stubs)`` starts a worker: a fresh interpreter (``python -I -B``:
isolated, and never writing bytecode into the code folder) running ``sandbox_worker.py`` (standard library
only, no arcforge import), its working directory a temporary folder,
its environment cleared but for ``PATH``, its address space (``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``)
limited, core dumps off, in a session of its own. Requests and replies are length-framed JSON over pipes,
never pickle: a hostile worker can send back only data, which is checked here.

A call that runs past ``Limits.call_s`` (wall clock), runs out of memory, crashes the interpreter or sends a
malformed reply returns ``CallResult(ok=False, error=...)``; the worker is killed and restarted for the
next call. An exception in upstream code is a failed call too (``"<ExcType>: <msg>"``), the worker lives on.
Error texts are made printable (no terminal control bytes) and truncated to one line.

``Sandbox.stream(request)`` sends one request whose replies are many frames (a generation run: one frame
per attempt, then ``{"end": true}``); each frame must come within ``call_s`` of the one before, else the
stream ends with ``{"dead": reason}`` and the worker is killed (restarted by the next request).

``Sandbox.each`` calls one function on many argument lists in one request: the worker answers call after
call as it goes and keeps each call's limits itself (``Limits.call_s`` of CPU, ``Limits.wall_s`` of wall
clock), so a call that runs out of time costs no restart; the parent still kills a worker whose answer is
``EACH_GRACE_S`` late, restarts it and goes on with the next call. Requests are written without blocking,
within a deadline: a worker that stops reading cannot hang arcforge.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from arcforge.errors import SandboxError

WORKER = Path(__file__).with_name("sandbox_worker.py")
GRID_TYPES = ("tuple", "numpy", "list")
MAX_REPLY = 64 << 20  # bytes: a larger reply is a failed call
MAX_ERROR = 200  # characters of an error text
START_S = 60.0  # seconds a worker may take to import upstream's modules
SEND_S = 60.0  # seconds a worker may take to read a request
EACH_GRACE_S = 2.0  # seconds past a call's wall limit before the parent kills the worker of an ``each`` call
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Limits:
    """Per call: ``call_s`` seconds (wall clock; CPU time is capped a little above), ``memory_mb`` MB of
    address space for the whole worker (the interpreter and upstream's modules included)."""

    call_s: float = 2.0
    memory_mb: int = 1024
    wall_s: float | None = (
        None  # ``each`` calls: wall clock a call may take (None: ``call_s``); call_s is CPU
    )


@dataclass
class CallResult:
    ok: bool
    value: Any = None
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # attributes read after the call (``read=``)


def escape(text: str) -> str:
    """One printable line: control bytes (ESC, CR, NUL, ...) shown as ``\\xNN``, at most MAX_ERROR chars."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


class _Dead(Exception):
    """The worker is gone or misbehaved; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _limit_child(memory_mb: int) -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Sandbox:
    """Upstream modules loaded in an isolated worker process; see the module docstring."""

    def __init__(
        self,
        code_dir: Path | str,
        modules: Sequence[str],
        limits: Limits | None = None,
        stubs: Mapping[str, Any] | Sequence[str] | None = None,
    ) -> None:
        self.code_dir = str(Path(code_dir).resolve())
        self.modules = list(modules)
        self.limits = limits or Limits()
        # module name -> source run in it ("" or anything not a str: an empty, inert module);
        # names alone work too
        if isinstance(stubs, Mapping):
            self.stubs = {str(k): v if isinstance(v, str) else "" for k, v in stubs.items()}
        else:
            self.stubs = dict.fromkeys(map(str, stubs or ()), "")
        self.restarts = 0  # workers started again after one was lost (not the first start)
        self._started = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        self._buf = bytearray()  # bytes read from the worker, not yet taken as frames

    # --- lifecycle --------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker and import upstream's modules (``SandboxError`` if that fails)."""
        if self._proc is not None:
            return
        if self._started:
            self.restarts += 1
        self._started = True
        if self._tmp is None:  # a restarted worker keeps the folder: one per sandbox
            self._tmp = tempfile.mkdtemp(prefix="arcforge-sandbox-")
        mem = self.limits.memory_mb
        self._buf = bytearray()
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-B", str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self._tmp,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            preexec_fn=lambda: _limit_child(mem),
            start_new_session=True,
        )
        os.set_blocking(self._proc.stdin.fileno(), False)  # type: ignore[union-attr]
        setup = {
            "code_dir": self.code_dir,
            "modules": self.modules,
            "stubs": self.stubs,
            "call_s": self.limits.call_s,
        }
        try:
            self._send(setup)
            reply = self._receive(START_S)
        except _Dead as e:
            self.close()
            raise SandboxError(
                f"upstream code in {Path(self.code_dir).name} did not start: {e.reason}"
            ) from None
        if not (isinstance(reply, dict) and reply.get("ok") is True):
            error = (
                escape(reply.get("e", "no reason given")) if isinstance(reply, dict) else "malformed reply"
            )
            self.close()
            raise SandboxError(f"upstream modules {', '.join(self.modules)} did not import: {error}")

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._kill()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _kill(self) -> int | None:
        """Kill the worker (and anything it started); its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        code = proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        return code

    # --- the channel --------------------------------------------------------------------------------------
    def _send(self, obj: Any) -> None:
        """Write one frame straight to the pipe (never buffered), within ``SEND_S``."""
        body = msgspec.json.encode(obj)
        data = memoryview(len(body).to_bytes(4, "big") + body)
        fd = self._proc.stdin.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + SEND_S
        while data:
            try:
                data = data[os.write(fd, data) :]
                continue
            except BlockingIOError:
                pass
            except OSError:
                raise _Dead("worker exited") from None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise _Dead("the worker does not read its requests")

    def _read_exactly(self, n: int, deadline: float) -> bytes:
        """The next ``n`` bytes from the worker (read in large chunks: frames that arrive together are taken
        from the buffer without further system calls)."""
        fd = self._proc.stdout.fileno()  # type: ignore[union-attr]
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _Dead("timeout")
            data = os.read(fd, max(n - len(self._buf), 1 << 16))
            if not data:
                raise _Dead("eof")
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _receive(self, seconds: float) -> Any:
        deadline = time.monotonic() + seconds
        size = int.from_bytes(self._read_exactly(4, deadline), "big")
        if size > MAX_REPLY:
            raise _Dead(f"reply of {size} bytes is over the {MAX_REPLY >> 20} MB limit")
        try:
            return msgspec.json.decode(self._read_exactly(size, deadline))
        except msgspec.DecodeError:
            raise _Dead("malformed reply") from None

    def _death_reason(self, why: str, wall_s: float | None = None) -> str:
        code = self._kill()
        if why == "timeout":
            return (
                f"timeout after {self.limits.call_s:g} s"
                if wall_s is None
                else f"timeout after {wall_s:g} s (wall)"
            )
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return f"timeout after {self.limits.call_s:g} s (CPU)"
            return f"crashed (signal {sig})"
        if why == "eof":
            return f"crashed (exit {code})"
        return why

    # --- calls --------------------------------------------------------------------------------------------
    def call(self, module: str, function: str, args: Sequence[Any], grid_type: str = "list") -> CallResult:
        return self._call({"m": module, "f": function, "a": list(args), "g": grid_type})

    def call_seeded(
        self,
        module: str,
        function: str,
        args: Sequence[Any],
        *,
        seed: int,
        grid_type: str = "list",
        reset: Mapping[str, Any] | None = None,
        read: Sequence[str] = (),
    ) -> CallResult:
        """A call after seeding ``random`` and ``numpy.random`` with ``seed``. ``reset``: module attributes
        set before the call (``{"utils.rng": []}``); ``read``: attributes returned in ``extra`` after it."""
        return self._call(
            {
                "m": module,
                "f": function,
                "a": list(args),
                "g": grid_type,
                "seed": int(seed),
                "reset": dict(reset or {}),
                "read": list(read),
            }
        )

    def stream(self, request: dict[str, Any], frame_s: float | None = None) -> Iterator[dict[str, Any]]:
        """Send ``request`` (a module-level op the worker knows, e.g. ``"op": "gen"``) and yield its reply
        frames up to and including the end frame ``{"end": True}``; a missing, malformed or late frame (more
        than ``frame_s`` seconds, default ``call_s``, after the one before) ends the stream with
        ``{"dead": reason}`` (the worker killed). A frame with ``"restart"`` kills the worker after it (it
        ran out of memory)."""
        if self._proc is None:
            self.start()
        done = False
        try:
            self._send(request)
            while not done:
                frame = self._receive(frame_s or self.limits.call_s)
                if not isinstance(frame, dict):
                    raise _Dead("malformed reply")
                done = frame.get("end") is True or bool(frame.get("restart"))
                if frame.get("restart"):
                    self._kill()
                yield frame
        except _Dead as e:
            done = True
            if e.reason == "timeout" and frame_s:
                self._kill()
                yield {"dead": f"timeout after {frame_s:g} s (wall clock)"}
            else:
                yield {"dead": self._death_reason(e.reason)}
        finally:
            if (
                not done
            ):  # the caller stopped reading: the worker's further frames must not reach the next call
                self._kill()

    def map(
        self, module: str, function: str, arg_lists: Sequence[Sequence[Any]], grid_type: str = "list"
    ) -> list[CallResult]:
        return [self.call(module, function, args, grid_type) for args in arg_lists]

    def each(
        self, module: str, function: str, arg_lists: Sequence[Sequence[Any]], grid_type: str = "list"
    ) -> Iterator[CallResult]:
        """``function(*args)`` for each of ``arg_lists``, in order, as the worker answers (one request; see
        the module docstring). ``CallResult.seconds`` is the CPU time of the call. Leaving the loop early
        kills a worker still at work; the next call starts a fresh one."""
        self._check(module, grid_type)
        wall = self.limits.wall_s or self.limits.call_s
        done = 0
        try:
            while done < len(arg_lists):
                if self._proc is None:
                    self.start()
                rest = arg_lists[done:]
                try:
                    self._send(
                        {
                            "m": module,
                            "f": function,
                            "g": grid_type,
                            "each": [list(a) for a in rest],
                            "cpu_s": self.limits.call_s,
                            "wall_s": wall,
                        }
                    )
                except _Dead as e:
                    done += 1
                    yield CallResult(False, error=self._death_reason(e.reason))
                    continue
                for _ in rest:
                    res = self._each_reply(wall)
                    done += 1
                    yield res
                    if self._proc is None:  # killed (late, crashed, out of memory): a fresh one for the rest
                        break
        finally:
            if done < len(arg_lists):
                self._kill()

    def _each_reply(self, wall: float) -> CallResult:
        try:
            reply = self._receive(wall + EACH_GRACE_S)
        except _Dead as e:
            return CallResult(False, error=self._death_reason(e.reason, wall))
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self._kill()
            return CallResult(False, error="malformed reply")
        t = reply.get("t")
        seconds = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) and t >= 0 else 0.0
        if reply.get("restart"):
            self._kill()
        if not reply["ok"]:
            return CallResult(False, error=escape(reply.get("e", "")) or "failed", seconds=seconds)
        return CallResult(True, reply.get("v"), seconds=seconds)

    def _check(self, module: str, grid_type: str) -> None:
        if grid_type not in GRID_TYPES:
            raise SandboxError(f"grid_type {grid_type!r} is not one of {', '.join(GRID_TYPES)}")
        if module not in self.modules:
            raise SandboxError(f"module {module!r} is not loaded in this sandbox")

    def _call(self, request: dict[str, Any]) -> CallResult:
        self._check(request["m"], request["g"])
        if self._proc is None:
            self.start()
        t0 = time.monotonic()
        try:
            self._send(request)
            reply = self._receive(self.limits.call_s)
        except _Dead as e:
            return CallResult(False, error=self._death_reason(e.reason), seconds=time.monotonic() - t0)
        seconds = time.monotonic() - t0
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            self._kill()
            return CallResult(False, error="malformed reply", seconds=seconds)
        if reply.get("restart"):
            self._kill()
        if not reply["ok"]:
            return CallResult(False, error=escape(reply.get("e", "")) or "failed", seconds=seconds)
        extra = reply.get("x") if isinstance(reply.get("x"), dict) else {}
        return CallResult(True, reply.get("v"), seconds=seconds, extra=extra)
