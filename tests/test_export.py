"""``arcforge export`` on a small hand-made build (tests/publish_helpers.py): what each format writes, the
evaluation guard, ids, the output folder's safety, metadata, determinism, progress, the CLI and a Hub
dataset as ``--data``. The real TRM client is exercised in tests/test_export_trm_client.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.errors import ExportError
from arcforge.export.augment import ID_SEPARATOR, dihedral
from arcforge.export.config import ExportConfig
from arcforge.export.npy import NpyWriter
from arcforge.export.run import export
from arcforge.shards import read_tasks
from tests.publish_helpers import build_out, hf_env  # noqa: F401  (fixture)

SPLITS = ["training=arc_agi_1:training,arc_community", "evaluation=arc_agi_1:evaluation"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """arc_agi_1 (6 training, 3 evaluation) and arc_community (4 training) tasks: short ids 00000000-00000003
    occur in several of them."""
    return build_out(tmp_path_factory.mktemp("export") / "data")


def _tasks(root: Path) -> dict:
    return {t.id: t for t in read_tasks(root)}


def _grid(text: str) -> np.ndarray:
    return np.array([[int(c) for c in row] for row in text.split("\n")], dtype=np.int8)


def test_kaggle_writes_every_task_with_unique_traceable_ids(data: Path, tmp_path: Path):
    res = export(data, tmp_path / "k", ExportConfig("kaggle", subsets=tuple(SPLITS)))
    tasks = _tasks(data)
    ids = json.loads((tmp_path / "k" / "arc-agi_ids.json").read_text())
    assert sorted(ids.values()) == sorted(tasks) and len(ids) == len(tasks) == res.tasks == 13
    # a last segment shared by several tasks gives way to the whole id; a unique one is kept short
    assert ids["arc_agi_1/training/00000000"] == "arc_agi_1/training/00000000"
    assert ids["00000005"] == "arc_agi_1/training/00000005"
    got = {}
    for sub in ("training", "evaluation"):
        chal = json.loads((tmp_path / "k" / f"arc-agi_{sub}_challenges.json").read_text())
        sols = json.loads((tmp_path / "k" / f"arc-agi_{sub}_solutions.json").read_text())
        assert chal.keys() == sols.keys()
        for kid, c in chal.items():
            got[ids[kid]] = (sub, c, sols[kid])
    assert {t for t, (sub, _, _) in got.items() if sub == "evaluation"} == {
        t for t in tasks if tasks[t].split == "evaluation"
    }
    for tid, (_, chal, sols) in got.items():
        task = tasks[tid]
        assert chal["train"] == [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train]
        assert chal["test"] == [{"input": p.input.tolist()} for p in task.test]
        assert sols == [p.output.tolist() for p in task.test]


def test_default_subsets_are_one_per_source_and_split(data: Path, tmp_path: Path):
    export(data, tmp_path / "k", ExportConfig("kaggle"))
    meta = json.loads((tmp_path / "k" / "export.json").read_text())
    subsets = {s["name"]: (s["tasks"], s["evaluation"]) for s in meta["selection"]["subsets"]}
    assert subsets == {
        "arc_agi_1_evaluation": (3, True),
        "arc_agi_1_training": (6, False),
        "arc_community_training": (4, False),
    }
    assert (tmp_path / "k" / "arc-agi_arc_community_training_challenges.json").is_file()


def test_evaluation_task_in_a_training_subset_is_refused_unless_allowed(data: Path, tmp_path: Path):
    cfg = ExportConfig("kaggle", subsets=("all=arc_agi_1,arc_community",))
    with pytest.raises(
        ExportError,
        match=r"3 task\(s\) of an evaluation split would go into the training "
        r"subset\(s\) all, e.g. arc_agi_1/evaluation/",
    ) as e:
        export(data, tmp_path / "k", cfg)
    assert "--allow-eval-in-train" in e.value.hint
    assert not (tmp_path / "k").exists() and not list(tmp_path.iterdir())
    export(data, tmp_path / "k", ExportConfig("kaggle", subsets=cfg.subsets, allow_eval_in_train=True))
    meta = json.loads((tmp_path / "k" / "export.json").read_text())
    assert meta["options"]["allow_eval_in_train"] is True and meta["selection"]["tasks"] == 13
    # naming the subset an evaluation subset is the other way out
    export(data, tmp_path / "k2", ExportConfig("kaggle", subsets=cfg.subsets, eval_subsets=("all",)))


@pytest.mark.parametrize(
    ("subsets", "message"),
    [
        (("a=arc_agi_1", "b=arc_agi_1:training"), "is in two subsets: a and b"),
        (("training=arc_agi_1:training", "x=nope"), "--subset x: selects no task"),
        (("training",), "expected NAME=ITEM"),
        (("t=arc_agi_1:bad split",), "expected SOURCE, SOURCE:SPLIT or an id glob"),
    ],
)
def test_bad_selections_name_the_problem(data: Path, tmp_path: Path, subsets, message):
    with pytest.raises(ExportError, match=message):
        export(data, tmp_path / "k", ExportConfig("kaggle", subsets=subsets, allow_eval_in_train=True))


def test_id_glob_items_select_by_id(data: Path, tmp_path: Path):
    res = export(
        data, tmp_path / "k", ExportConfig("kaggle", subsets=("few=arc_agi_1/training/0000000[0-2]",))
    )
    assert res.tasks == 3
    chal = json.loads((tmp_path / "k" / "arc-agi_few_challenges.json").read_text())
    assert sorted(chal) == ["00000000", "00000001", "00000002"]  # unique within this export: short


def test_output_folder_is_never_taken_from_someone_else(data: Path, tmp_path: Path):
    out = tmp_path / "k"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="holds files that arcforge export did not write"):
        export(data, out, ExportConfig("kaggle", subsets=tuple(SPLITS)))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    fresh = tmp_path / "fresh"
    export(data, fresh, ExportConfig("kaggle", subsets=tuple(SPLITS)))
    before = (fresh / "export.json").read_text()
    with pytest.raises(ExportError, match="holds an earlier export") as e:
        export(data, fresh, ExportConfig("jsonl", subsets=tuple(SPLITS)))
    assert "--overwrite" in e.value.hint and (fresh / "export.json").read_text() == before
    export(data, fresh, ExportConfig("jsonl", subsets=tuple(SPLITS), overwrite=True))
    assert sorted(p.name for p in fresh.iterdir()) == ["evaluation.jsonl", "export.json", "training.jsonl"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or old folder left


def test_metadata_records_version_provenance_options_selection_and_seed(data: Path, tmp_path: Path):
    from arcforge import __version__

    export(data, tmp_path / "t", ExportConfig("trm", subsets=tuple(SPLITS), num_aug=2, seed=7))
    meta = json.loads((tmp_path / "t" / "export.json").read_text())
    assert meta["arcforge_version"] == __version__ and meta["format"] == "trm" and meta["seed"] == 7
    assert meta["build_provenance"] == json.loads((data / "provenance.json").read_text())
    assert meta["options"]["num_aug"] == 2 and meta["options"]["eval_demos_in_train"] is False
    assert meta["selection"]["evaluation_splits"] == ["arc_agi_1:evaluation"]
    assert [s["items"] for s in meta["selection"]["subsets"]] == [
        ["arc_agi_1:training", "arc_community"],
        ["arc_agi_1:evaluation"],
    ]
    assert sorted(meta["files"]) == sorted(
        p.relative_to(tmp_path / "t").as_posix() for p in (tmp_path / "t").rglob("*") if p.is_file()
    )
    assert str(data) not in (tmp_path / "t" / "export.json").read_text()  # no local path


def test_trm_arrays_are_consistent_and_deterministic(data: Path, tmp_path: Path):
    cfg = ExportConfig("trm", subsets=tuple(SPLITS), num_aug=3, seed=1)
    export(data, tmp_path / "a", cfg)
    export(data, tmp_path / "b", cfg)
    export(data, tmp_path / "c", ExportConfig("trm", subsets=tuple(SPLITS), num_aug=3, seed=2))
    a, b, c = (tmp_path / n for n in "abc")
    for f in ("train/all__inputs.npy", "train/all__labels.npy", "identifiers.json", "test/all__inputs.npy"):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert (a / "identifiers.json").read_bytes() != (c / "identifiers.json").read_bytes()
    names = json.loads((a / "identifiers.json").read_text())
    tr = {
        k: np.load(a / "train" / f"all__{k}.npy")
        for k in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
    }
    assert tr["inputs"].shape == tr["labels"].shape and tr["inputs"].shape[1] == 900
    assert tr["inputs"].dtype == np.uint8 and tr["inputs"].max() <= 11
    assert tr["puzzle_indices"][-1] == len(tr["inputs"]) and tr["group_indices"][-1] == len(
        tr["puzzle_identifiers"]
    )
    assert len(tr["group_indices"]) - 1 == 10  # the training tasks; evaluation demonstrations stay out
    for g in range(len(tr["group_indices"]) - 1):
        members = [
            names[i] for i in tr["puzzle_identifiers"][tr["group_indices"][g] : tr["group_indices"][g + 1]]
        ]
        assert ID_SEPARATOR not in members[0] and len(members) == 4
        assert all(m.split(ID_SEPARATOR)[0] == members[0] for m in members)
        assert all(re.fullmatch(r"t[0-7]", m.split(ID_SEPARATOR)[1]) for m in members[1:])
    meta = json.loads((a / "train" / "dataset.json").read_text())
    assert meta["total_groups"] == 10 and meta["num_puzzle_identifiers"] == len(names)
    test_puzzles = json.loads((a / "test_puzzles.json").read_text())
    assert len(test_puzzles) == 3 and all("output" in p for t in test_puzzles.values() for p in t["test"])


def test_trm_eval_demos_go_to_train_only_when_asked(data: Path, tmp_path: Path):
    export(
        data, tmp_path / "t", ExportConfig("trm", subsets=tuple(SPLITS), num_aug=0, eval_demos_in_train=True)
    )
    meta = json.loads((tmp_path / "t" / "train" / "dataset.json").read_text())
    assert meta["total_groups"] == 13
    test_meta = json.loads((tmp_path / "t" / "test" / "dataset.json").read_text())
    assert test_meta["total_groups"] == 3 and test_meta["total_puzzles"] == 3


def test_npy_writer_appends_and_loads(tmp_path: Path):
    with NpyWriter(tmp_path / "x.npy", np.int32, (3,)) as w:
        for i in range(5):
            w.append(np.full((i, 3), i))
    got = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert got.shape == (10, 3) and got.dtype == np.int32 and got[-1, 0] == 4
    with NpyWriter(tmp_path / "y.npy", np.uint8) as w:
        pass
    assert np.load(tmp_path / "y.npy").shape == (0,)


def test_jsonl_renders_grids_as_digit_rows_and_augments(data: Path, tmp_path: Path):
    export(data, tmp_path / "j", ExportConfig("jsonl", subsets=tuple(SPLITS), num_aug=2))
    tasks = _tasks(data)
    lines = [
        json.loads(x)
        for sub in ("training", "evaluation")
        for x in (tmp_path / "j" / f"{sub}.jsonl").read_text().splitlines()
    ]
    plain = [x for x in lines if ID_SEPARATOR not in x["id"]]
    assert len(plain) == sum(len(t.test) for t in tasks.values())
    for line in plain:
        task = tasks[line["task"]]
        blocks = line["prompt"].split("\n\n")
        for block, pair in zip(blocks, task.train, strict=False):
            i, o = re.fullmatch(r"input:\n(.*)\noutput:\n(.*)", block, re.S).groups()
            assert np.array_equal(_grid(i), pair.input) and np.array_equal(_grid(o), pair.output)
        test = task.test[line["test_index"]]
        assert np.array_equal(
            _grid(re.fullmatch(r"input:\n(.*)\noutput:\n", blocks[-1], re.S)[1]), test.input
        )
        assert line["completion"].endswith("\n") and np.array_equal(
            _grid(line["completion"][:-1]), test.output
        )
    for line in (x for x in lines if ID_SEPARATOR in x["id"]):
        _, t, colors = line["id"].split(ID_SEPARATOR)
        perm = np.array([int(c) for c in colors], dtype=np.int8)
        assert perm[0] == 0 and sorted(perm) == list(range(10))
        want = dihedral(perm[tasks[line["task"]].test[line["test_index"]].output], int(t[1:]))
        assert np.array_equal(_grid(line["completion"][:-1]), want)


def test_cli_json_progress_and_errors(data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_LOG_SECONDS", "0")
    runner = CliRunner()
    args = ["export", "-d", str(data), "-o", str(tmp_path / "t"), "-f", "trm", "--num-aug", "1", "--json"]
    res = runner.invoke(app, [*args, *(x for s in SPLITS for x in ("--subset", s))])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["tasks"] == 13 and report["written"]["splits"]["train"]["groups"] == 10
    assert re.search(r"export trm: 13/13 \(100%\).*done", res.stderr)
    res = runner.invoke(
        app,
        ["export", "-d", str(data), "-o", str(tmp_path / "x"), "-f", "kaggle", "--subset", "all=arc_agi_1"],
    )
    assert res.exit_code == 1 and res.stderr.startswith("Error: 3 task(s) of an evaluation split")
    assert "hint:" in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["export", "-d", str(data), "-o", str(tmp_path / "x"), "-f", "parquet"])
    assert res.exit_code == 2
    res = runner.invoke(
        app, ["export", "-d", str(data), "-o", str(tmp_path / "x"), "-f", "kaggle", "--num-aug", "3"]
    )
    assert res.exit_code == 1 and "kaggle format writes the tasks as they are" in res.stderr


def test_export_reads_a_hub_dataset(data: Path, tmp_path: Path, hf_env, monkeypatch):  # noqa: F811
    import huggingface_hub.constants as hc

    from arcforge.hub.plan import collect_files, write_tree
    from tests.test_publish_readback import REPO, FakeHub

    repo = write_tree(collect_files(data), tmp_path / "repo")
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    with FakeHub(repo) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        res = CliRunner().invoke(
            app,
            [
                "export",
                "-d",
                REPO,
                "-o",
                str(tmp_path / "k"),
                "-f",
                "kaggle",
                "--json",
                *(x for s in SPLITS for x in ("--subset", s)),
            ],
        )
    assert res.exit_code == 0, res.output
    local = tmp_path / "local"
    export(data, local, ExportConfig("kaggle", subsets=tuple(SPLITS)))
    for name in ("arc-agi_training_challenges.json", "arc-agi_evaluation_solutions.json", "arc-agi_ids.json"):
        assert (tmp_path / "k" / name).read_bytes() == (local / name).read_bytes()
    meta = json.loads((tmp_path / "k" / "export.json").read_text())
    assert meta["build_provenance"] == json.loads((data / "provenance.json").read_text())


def test_an_unwritable_output_is_one_clear_error(data: Path, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=r"--out .*file/k: cannot write the export there: Not a directory"):
        export(data, blocker / "k", ExportConfig("kaggle"))
    assert blocker.read_text() == "not a folder"


def test_a_task_with_a_hidden_test_output_is_left_out_and_counted(data: Path, tmp_path: Path):
    from arcforge.build.shard_writer import write_shards
    from arcforge.task import Pair, tasks_to_table

    tasks = list(read_tasks(data))
    tasks[0].test = [Pair(tasks[0].test[0].input, None)]
    hidden = tmp_path / "hidden"
    write_shards(tasks_to_table(tasks), hidden)
    for fmt in ("kaggle", "trm", "jsonl"):
        res = export(hidden, tmp_path / fmt, ExportConfig(fmt, num_aug=1 if fmt != "kaggle" else None))
        assert res.written["skipped"] == {"hidden test output": 1}, fmt
    ids = json.loads((tmp_path / "kaggle" / "arc-agi_ids.json").read_text())
    assert tasks[0].id not in ids.values() and len(ids) == len(tasks) - 1


def test_what_a_killed_export_left_behind_is_put_right(data: Path, tmp_path: Path):
    out = tmp_path / "k"
    export(data, out, ExportConfig("kaggle"))
    dead = 999999999  # above any pid_max: no such process
    staging = tmp_path / f".k.exporting-{dead}"
    staging.mkdir()
    (staging / "half.json").write_text("{")
    out.rename(tmp_path / f".k.old-{dead}")  # killed between its two renames: the earlier export is aside
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        busy = tmp_path / f".k.exporting-{live.pid}"  # an export still running: left alone
        busy.mkdir()
        with pytest.raises(ExportError, match="holds an earlier export"):
            export(data, out, ExportConfig("kaggle"))
        assert (out / "export.json").is_file() and not staging.exists() and busy.is_dir()
        assert sorted(p.name for p in tmp_path.iterdir()) == [busy.name, "k"]
    finally:
        live.kill()
        live.wait()
