"""The sandbox runs upstream code apart from arcforge: hostile programs cost one failed call each, within
their limit, and the sandbox keeps working; results come back as data (JSON), never as pickles."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from arcforge.errors import SandboxError
from arcforge.sources.sandbox import CallResult, Limits, Sandbox, escape

HOSTILE = textwrap.dedent("""
    import os, random, sys
    import matplotlib.pyplot as plt          # stubbed
    from matplotlib.colors import Normalize  # stubbed

    def echo(g):
        return g

    def kind(g):
        return type(g).__name__

    def draw():
        return [random.random() for _ in range(3)]

    def draw_np():
        import numpy as np
        return np.random.randint(0, 10, (2, 3))

    def loop():
        while True:
            pass

    def sleep():
        import time
        time.sleep(60)

    def boom():
        raise ValueError("bad\\x1b[31m thing\\nsecond line")

    def bomb():
        return len(bytearray(10**11))

    def grow():
        hold = []
        while True:
            hold.append(bytearray(10**7))

    def not_json():
        return {1, 2}

    def nan():
        return float("nan")

    def abort():
        os.abort()

    def segv():
        import ctypes
        ctypes.string_at(0)

    def noisy():
        print("\\x1b[2J" * 100)
        sys.stdout.write("garbage")
        os.write(1, b"\\x00\\x00\\x00\\x05hello")
        return 7

    def where():
        return [os.getcwd(), sorted(os.environ)]

    def plot():
        return str(type(plt.figure()).__name__) + str(type(Normalize).__name__)

    def swallow():
        while True:
            try:
                while True:
                    pass
            except BaseException:
                pass

    def deaf():
        import signal, time
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM, signal.SIGPROF})
        time.sleep(60)

    def by_name(name, *args):
        return globals()[name](*args)
""")


@pytest.fixture()
def code(tmp_path):
    d = tmp_path / "upstream"
    d.mkdir()
    (d / "hostile.py").write_text(HOSTILE)
    return d


def _sandbox(code, **limits) -> Sandbox:
    return Sandbox(
        code, ["hostile"], Limits(**{"call_s": 1.0, "memory_mb": 512, **limits}), stubs={"matplotlib": ""}
    )


@pytest.mark.parametrize(
    "fn,needle,restart",
    [
        ("loop", "timeout after 1 s", True),
        ("sleep", "timeout after 1 s", True),
        ("boom", "ValueError: bad\\x1b[31m thing", False),
        ("bomb", "memory limit", True),
        ("not_json", "TypeError: result is not JSON-able: set", False),
        ("nan", "ValueError", False),
        ("abort", "crashed (signal 6)", True),
        ("segv", "crashed (signal 11)", True),
    ],
)
def test_a_hostile_program_costs_one_failed_call_and_the_sandbox_goes_on(code, fn, needle, restart):
    with _sandbox(code) as sb:
        t0 = time.monotonic()
        r = sb.call("hostile", fn, [])
        assert time.monotonic() - t0 < 5
        assert not r.ok and r.value is None
        assert r.error.startswith(needle), r.error
        assert "\n" not in r.error and "\x1b" not in r.error
        assert sb.restarts == 0
        after = sb.call("hostile", "echo", [[[1, 2], [3, 4]]])
        assert after.ok and after.value == [[1, 2], [3, 4]]
        assert sb.restarts == (1 if restart else 0)
        cwd = sb.call("hostile", "where", []).value[0]
    assert not Path(cwd).exists()  # the temporary folder goes with the sandbox, restarts included


def test_each_keeps_the_limits_in_the_worker_and_a_timeout_costs_no_restart(code):
    calls = [
        ["loop"],
        ["echo", 1],
        ["boom"],
        ["echo", 2],
        ["bomb"],
        ["echo", 3],
        ["abort"],
        ["swallow"],
        ["echo", [[4]]],
    ]
    with _sandbox(code, call_s=0.5, wall_s=60.0) as sb:  # CPU time: the same verdict on a busy machine
        t0 = time.monotonic()
        got = list(sb.each("hostile", "by_name", calls))
        assert time.monotonic() - t0 < 60
        errors = [r.error for r in got]
        assert errors[0] == "timeout after 0.5 s (CPU)" and errors[2].startswith("ValueError: bad")
        assert errors[4] == "memory limit" and errors[6] == "crashed (signal 6)"
        assert errors[7] == "timeout after 0.5 s (CPU)"  # swallowed its timeouts: RLIMIT_CPU ended it
        assert [r.value for r in got if r.ok] == [1, 2, 3, [[4]]]
        assert got[0].seconds >= 0.4  # CPU seconds of the call, as the worker measured them
        assert sb.restarts == 3  # memory, crash, RLIMIT_CPU: not the loop's timeout
        stream = sb.each("hostile", "by_name", [["loop"], ["echo", 5]])
        assert next(stream).error.startswith("timeout")
        stream.close()  # left early: the worker, busy or not, is not reused mid-request
        assert [r.value for r in sb.each("hostile", "echo", [[6], [7]])] == [6, 7]


def test_each_ends_a_call_that_waits_by_the_wall_clock(code):
    with _sandbox(code, call_s=0.5, wall_s=1.0) as sb:
        got = list(sb.each("hostile", "by_name", [["sleep"], ["echo", 1], ["deaf"], ["echo", 2]]))
        assert [r.error for r in got if not r.ok] == [
            "timeout after 1 s (wall)"
        ] * 2  # deaf: the parent's kill
        assert [r.value for r in got if r.ok] == [1, 2] and sb.restarts == 1


def test_growing_memory_hits_the_memory_limit_not_the_machine(code):
    with _sandbox(code, memory_mb=256, call_s=20.0) as sb:
        r = sb.call("hostile", "grow", [])
        assert (r.ok, r.error) == (False, "memory limit")
        assert sb.call("hostile", "echo", [3]).value == 3


def test_upstream_output_cannot_corrupt_the_channel(code):
    with _sandbox(code) as sb:
        assert sb.call("hostile", "noisy", []).value == 7
        assert sb.call("hostile", "echo", [1]).value == 1


def test_worker_runs_in_a_temporary_folder_with_a_cleared_environment(code, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    with _sandbox(code) as sb:
        cwd, env = sb.call("hostile", "where", []).value
        assert cwd != os.getcwd() and "arcforge-sandbox-" in cwd
        assert set(env) <= {"PATH", "LC_CTYPE"}  # LC_CTYPE: Python may set it itself (PEP 538)
        assert os.path.isdir(cwd)
    assert not os.path.exists(cwd)


def test_grid_types_and_seeds(code):
    with _sandbox(code) as sb:
        g = [[1, 2], [3, 4]]
        assert [sb.call("hostile", "kind", [g], grid_type=t).value for t in ("tuple", "numpy", "list")] == [
            "tuple",
            "ndarray",
            "list",
        ]
        assert sb.call("hostile", "echo", [g], grid_type="numpy").value == g  # numpy comes back as lists
        a = sb.call_seeded("hostile", "draw", [], seed=7)
        b = sb.call_seeded("hostile", "draw", [], seed=8)
        c = sb.call_seeded("hostile", "draw", [], seed=7)
        assert a.value == c.value != b.value
        n1, n2 = (sb.call_seeded("hostile", "draw_np", [], seed=3).value for _ in range(2))
        assert n1 == n2 and len(n1) == 2 and len(n1[0]) == 3
        assert sb.call("hostile", "plot", []).value == "_Anything_Anything"  # matplotlib is an inert stub
        rs = sb.map("hostile", "echo", [[1], [2], [3]])
        assert [r.value for r in rs] == [1, 2, 3] and all(isinstance(r, CallResult) for r in rs)
        with pytest.raises(SandboxError, match="grid_type"):
            sb.call("hostile", "echo", [1], grid_type="pickle")


def test_stubs_by_name_and_a_sandbox_used_without_a_with_block(code):
    sb = Sandbox(code, ["hostile"], stubs=["matplotlib"])
    try:
        assert sb.call("hostile", "plot", []).value == "_Anything_Anything"
        assert sb.restarts == 0
        assert not sb.call("hostile", "abort", []).ok and sb.call("hostile", "echo", [1]).value == 1
        assert sb.restarts == 1
    finally:
        sb.close()
    assert Sandbox(code, ["hostile"], stubs={"matplotlib": None}).stubs == {"matplotlib": ""}


def test_modules_that_do_not_import_raise_a_sandbox_error(code):
    with pytest.raises(SandboxError, match="did not import: ModuleNotFoundError"):
        Sandbox(code, ["nope"]).start()
    (code / "broken.py").write_text("raise RuntimeError('at import')\n")
    with pytest.raises(SandboxError, match="RuntimeError: at import"):
        Sandbox(code, ["broken"]).start()


def test_escape_shows_control_bytes_and_truncates():
    assert escape("a\x1b[31mb\rc") == "a\\x1b[31mb\\x0dc"
    assert len(escape("x" * 1000)) == 200


def test_the_worker_never_uses_pickle():
    from arcforge.sources import sandbox, sandbox_worker

    for mod in (sandbox, sandbox_worker):
        text = Path(mod.__file__).read_text(encoding="utf-8")
        assert "pickle" not in text.replace("never pickle", "")
    assert "arcforge" not in Path(sandbox_worker.__file__).read_text(encoding="utf-8").split('"""', 2)[2]


def test_real_re_arc_generator_and_verifier_run_in_the_sandbox(shared_sources):
    code = shared_sources / "michaelhodel" / "re-arc"
    with Sandbox(
        code,
        ["generators", "verifiers", "utils"],
        Limits(call_s=5.0, memory_mb=1024),
        stubs={"matplotlib": ""},
    ) as sb:
        ex = sb.call_seeded(
            "generators",
            "generate_007bbfb7",
            [0, 1],
            seed=1,
            grid_type="tuple",
            reset={"utils.rng": []},
            read=["utils.rng"],
        )
        assert ex.ok and len(ex.extra["utils.rng"]) > 0
        inp, out = ex.value["input"], ex.value["output"]
        assert (len(out), len(out[0])) == (len(inp) ** 2, len(inp[0]) ** 2)  # each cell becomes the grid
        again = sb.call_seeded("generators", "generate_007bbfb7", [0, 1], seed=1, grid_type="tuple")
        assert again.value == ex.value
        assert sb.call("verifiers", "verify_007bbfb7", [inp], grid_type="tuple").value == out


def test_the_worker_writes_no_bytecode_into_the_code_folder(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "prog.py").write_text("import helper\n\ndef f(x):\n    return helper.twice(x)\n")
    (code / "helper.py").write_text("def twice(x):\n    return 2 * x\n")
    with Sandbox(code, modules=["prog"], limits=Limits(call_s=5.0)) as sb:
        r = sb.call("prog", "f", [21], grid_type="list")
    assert r.ok and r.value == 42
    assert sorted(p.name for p in code.rglob("*")) == ["helper.py", "prog.py"]  # no __pycache__
