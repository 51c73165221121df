"""Generation runs on the real upstream code in ../shared: BARC's seeds come out in ARC's orientation (BARC
indexes numpy grids [x][y]), helpers beside the seeds are not seeds; a worker that dies mid-run costs the
attempt it was on and the run goes on in a new worker with its repeat filter intact."""

from __future__ import annotations

import ast
import json
import random
import shutil
import textwrap

import numpy as np

from arcforge.sources.generate import driver, example_seed, generate_keys
from arcforge.sources.programs import SEED_NAME
from arcforge.sources.sandbox import Sandbox

BARC = {"driver": "barc_seeds", "call_s": 5.0, "memory_mb": 1024, "stubs": ["matplotlib"], "k": 3}
RE_ARC = {"driver": "re_arc", "call_s": 5.0, "memory_mb": 1024, "stubs": ["matplotlib"], "k": 3}


def _barc(shared_sources):
    return shared_sources / "xu3kev" / "BARC"


def _arc_task(shared_sources, key: str) -> list[dict]:
    t = json.loads(
        (shared_sources / "fchollet" / "ARC-AGI" / "data" / "training" / f"{key}.json").read_text()
    )
    return t["train"] + t["test"]


def test_barc_driver_takes_seeds_only_not_template_or_common(shared_sources):
    keys = driver(_barc(shared_sources), BARC).keys()
    assert len(keys) == 162 and "template" not in keys and "common" not in keys
    assert all(SEED_NAME.match(k) for k in keys)
    seeds = _barc(shared_sources) / "seeds"
    assert (
        seeds / "template.py"
    ).is_file()  # upstream's skeleton for prompting: main and generate_input are "..."
    for k in keys:
        names = {
            n.name for n in ast.parse((seeds / f"{k}.py").read_text()).body if isinstance(n, ast.FunctionDef)
        }
        assert {"main", "generate_input"} <= names, k


def test_barc_seeds_index_grids_x_y_on_their_real_arc_task(shared_sources):
    """017c7c7b (ARC-AGI-1 training): 6x3 inputs, 9x3 outputs. Its seed solves the real task only when handed
    the transposed grid and its answer is transposed back: BARC's [x][y] convention."""
    pairs = _arc_task(shared_sources, "017c7c7b")
    with Sandbox(_barc(shared_sources) / "seeds", ["017c7c7b"], stubs=["matplotlib"]) as sb:
        for p in pairs:
            inp, out = np.array(p["input"]), np.array(p["output"])
            flipped = sb.call("017c7c7b", "main", [inp.T.tolist()], grid_type="numpy")
            assert flipped.ok and np.array_equal(np.array(flipped.value).T, out)
            as_rows = sb.call("017c7c7b", "main", [inp.tolist()], grid_type="numpy")
            assert not (as_rows.ok and np.array_equal(np.array(as_rows.value), out))


def test_a_barc_jsonl_line_written_from_a_seeds_own_grids_reads_as_the_real_arc_task(shared_sources):
    """The Hub's BARC JSONL lines hold ``(input.tolist(), output.tolist())`` of the numpy grids a program
    makes and reads (generate_problems.py's ``Problem.to_dict``). Seed 017c7c7b's own grids, written so,
    read back through the ``barc_jsonl`` format as ARC-AGI-1 training 017c7c7b itself (6x3 -> 9x3)."""
    import io

    from arcforge.formats import Member, RawTask, get

    pairs = _arc_task(shared_sources, "017c7c7b")
    examples = []
    with Sandbox(_barc(shared_sources) / "seeds", ["017c7c7b"], stubs=["matplotlib"]) as sb:
        for p in pairs:
            grid = np.array(p["input"]).T  # what the seed's generate_input() makes: grid[x][y]
            r = sb.call("017c7c7b", "main", [grid.tolist()], grid_type="numpy")
            assert r.ok
            examples.append([grid.tolist(), np.array(r.value).tolist()])
    line = json.dumps({"examples": examples, "seeds": ["017c7c7b.py"], "source": "..."}).encode()
    member = Member("data.jsonl", lambda: line, open=lambda: io.BytesIO(line))
    (task,) = get("barc_jsonl").read(member, {})
    assert isinstance(task, RawTask)
    got = [(q.input.tolist(), q.output.tolist()) for q in task.train + task.test]
    assert got == [(p["input"], p["output"]) for p in pairs]
    assert task.test[0].input.shape == (6, 3) and task.test[0].output.shape == (9, 3)
    (stored,) = get("barc_jsonl").read(member, {"transpose": False})  # the line's own layout, kept
    assert stored.test[0].input.shape == (3, 6)


def test_generated_barc_examples_are_in_arc_orientation(shared_sources):
    """Generated examples of seed 017c7c7b look like its real task (6x3 blue -> 9x3 red), and the seed maps
    each generated input to its output in BARC's own orientation."""
    d = driver(_barc(shared_sources), BARC)
    (res,) = generate_keys(d, "barc", ["017c7c7b"], 4)
    assert res.counts["kept"] == 4
    real = _arc_task(shared_sources, "017c7c7b")
    assert {np.array(p["input"]).shape for p in real} == {(6, 3)}
    with Sandbox(_barc(shared_sources) / "seeds", ["017c7c7b"], stubs=["matplotlib"]) as sb:
        for e in res.examples:
            assert e.input.shape == (6, 3) and e.output.shape == (9, 3)
            assert set(np.unique(e.input)) <= {0, 1} and set(np.unique(e.output)) <= {0, 2}
            again = sb.call("017c7c7b", "main", [e.input.T.tolist()], grid_type="numpy")
            assert again.ok and np.array_equal(np.array(again.value).T, e.output)


FLAKY = textwrap.dedent("""
    import os, random
    from utils import *

    def generate_00000001(diff_lb, diff_ub):
        v = random.randint(0, 5)
        if random.random() < 0.3:
            os.abort()
        return {"input": ((v, 0),), "output": ((0, v + 1),)}
""")


def test_a_dying_worker_costs_its_attempt_and_the_run_resumes_with_its_repeat_filter(tmp_path):
    """Attempts that crash the interpreter cost one quarantined example each; the run goes on from the next
    attempt in a new worker, which still rejects inputs kept before the crash (only 6 inputs exist)."""
    verifier = "def verify_00000001(I):\n    return ((0, I[0][0] + 1),)\n"
    for name, text in (
        ("generators.py", FLAKY),
        ("verifiers.py", verifier),
        ("utils.py", "rng = []\n"),
        ("main.py", "def get_pso_difficulty(e):\n    return 0.5\n"),
        ("dsl.py", ""),
    ):
        (tmp_path / name).write_text(text)
    d = driver(tmp_path, RE_ARC)
    (res,) = generate_keys(d, "flaky", ["00000001"], 6)
    aborted, expected = set(), {}  # what each attempt does, from its seed: crash, or a new (kept) input
    for i in range(4 * 6 + 20):
        rnd = random.Random(example_seed("flaky", "00000001", i))
        v = rnd.randint(0, 5)
        if rnd.random() < 0.3:
            aborted.add(i)
        elif len(expected) < 6:
            expected.setdefault(v, i)
    assert aborted and res.counts["generator_error"] == len(aborted)
    assert {i for i, f in res.failures} == aborted and all(
        f.detail == "crashed (signal 6)" for _, f in res.failures
    )
    assert [(e.input.tolist(), e.index) for e in res.examples] == [([[v, 0]], i) for v, i in expected.items()]
    assert res.counts["repeat"] > 0  # inputs kept before a crash are still repeats after it
    assert res.counts["kept"] + res.counts["repeat"] + len(aborted) == res.counts["attempts"]
    assert all(e.measures == {"pso_difficulty": 0.5} for e in res.examples)


SLEEPY = textwrap.dedent("""
    import time
    from utils import *

    def generate_00000001(diff_lb, diff_ub):
        time.sleep(0.8)  # no CPU time
        return {"input": ((1, 2),), "output": ((2, 1),)}

    def generate_00000002(diff_lb, diff_ub):
        time.sleep(3600)
""")


def test_the_attempt_limit_is_cpu_time_and_the_wall_clock_only_a_backstop(tmp_path, monkeypatch):
    """An attempt that waits longer than call_s without using CPU is kept (a busy machine slows attempts
    down, and must not change the output); one that never replies is stopped by the wall-clock backstop."""
    from arcforge.sources import generate

    verifier = "def verify_00000001(I):\n    return ((2, 1),)\n\ndef verify_00000002(I):\n    return I\n"
    for name, text in (
        ("generators.py", SLEEPY),
        ("verifiers.py", verifier),
        ("utils.py", "rng = []\n"),
        ("main.py", "def get_pso_difficulty(e):\n    return 0.5\n"),
        ("dsl.py", ""),
    ):
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(generate, "MIN_WALL_S", 2.0)
    d = driver(tmp_path, {**RE_ARC, "call_s": 0.2})
    (ok,) = generate_keys(d, "sleepy", ["00000001"], 1)
    assert ok.counts["kept"] == 1 and not ok.failures
    monkeypatch.setattr(generate, "GIVE_UP", 1)
    (stuck,) = generate_keys(d, "sleepy", ["00000002"], 1)
    assert [f.detail for _, f in stuck.failures] == ["timeout after 2 s (wall clock)"]
    assert stuck.counts["abandoned"] == 1 and stuck.counts["short"] == 1


def test_barc_problem_files_are_read_in_arc_orientation(shared_sources, tmp_path):
    """BARC stores ``synthetic_problems/*.json`` in its programs' [x][y] orientation: the program beside a
    problem maps the transpose of the task's input (as the format reads it) to the transpose of its output,
    and the format's rows are the stored lists transposed."""
    from arcforge import formats
    from arcforge.formats import Member, RawTask

    root = _barc(shared_sources)
    shutil.copy(root / "seeds" / "common.py", tmp_path / "common.py")
    fmt, confirmed = formats.get("barc_problem"), 0
    for path in sorted((root / "synthetic_problems").glob("*.json"))[:60]:
        stored = json.loads(path.read_text())["examples"][0]
        if np.array(stored["input"]).shape[0] == np.array(stored["input"]).shape[1]:
            continue  # a square grid shows no orientation
        (task,) = fmt.read(Member(path.name, path.read_bytes), {"drop": []})
        assert isinstance(task, RawTask)
        first = task.train[0]
        assert np.array_equal(first.input, np.array(stored["input"]).T)
        shutil.copy(path.with_suffix(".py"), tmp_path / "problem.py")
        with Sandbox(tmp_path, ["problem"], stubs=["matplotlib"]) as sb:
            got = sb.call("problem", "main", [first.input.T.tolist()], grid_type="numpy")
        confirmed += got.ok and np.array_equal(np.array(got.value).T, first.output)
        if confirmed == 3:
            break
    assert confirmed == 3
