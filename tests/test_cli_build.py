"""The build, stats and show commands through the CLI."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from arcforge.cli.app import app

runner = CliRunner()
GOOD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]], "output": [[4, 3]]}]}


def test_build_json_and_strict(arcforge_home, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(GOOD))
    (folder / "bad.json").write_bytes(b"\xef\xbb\xbf{}")
    out = tmp_path / "out"
    r = runner.invoke(app, ["build", "--out", str(out), "--local", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["tasks"] == {"mine": {"training": 1}} and report["quarantined"] == {"bom": 1}
    r = runner.invoke(app, ["build", "--out", str(out), "--local", str(folder), "--strict"])
    assert r.exit_code == 1 and "Error: --strict: 1 task(s) quarantined" in r.output
    r = runner.invoke(app, ["build", "--out", str(out), "--source", "arc_agi_1"])
    assert r.exit_code == 1 and "arcforge fetch arc_agi_1" in r.output


def test_stats_json_and_table(full_build):
    out, stats = full_build
    r = runner.invoke(app, ["stats", "-d", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    tama = rep["sources"]["neoneye_tama"]["training"]
    assert tama["tasks"] == 5000 and tama["over_30_grids"] == 794  # SOURCES.json: 794 grids over 30
    assert tama["over_30_tasks"] == stats.over_30["neoneye_tama"]["training"]
    iparc = rep["sources"]["iparc"]["training"]
    assert iparc["colors_used"] == [0, 1, 2, 3] and iparc["grid_sizes"]["11-20"] == iparc["grids"]
    assert rep["sources"]["arc_agi_1"]["evaluation"]["tasks"] == 400
    r = runner.invoke(app, ["stats", "-d", str(out)])
    assert r.exit_code == 0 and "neoneye_tama" in r.output and "5000" in r.output


def test_show_terminal_png_json(full_build, tmp_path):
    out, _ = full_build
    r = runner.invoke(
        app, ["show", "arc_agi_1/evaluation/00576224", "--data", str(out), "--png", str(tmp_path / "t.png")]
    )
    assert r.exit_code == 0, r.output
    assert "train[0]  2x2 -> 6x6" in r.stdout and "\x1b[" not in r.stdout  # not a terminal: digits
    assert "8 6    8 6 8 6 8 6" in r.stdout
    assert Image.open(tmp_path / "t.png").format == "PNG"
    r = runner.invoke(app, ["show", "arc_agi_1/evaluation/00576224", "--data", str(out), "--json"])
    row = json.loads(r.stdout)
    assert row["train"][0]["input"] == [[8, 6], [6, 4]] and row["source"] == "arc_agi_1"
    r = runner.invoke(app, ["show", "arc_agi_1/evaluation/nope", "--data", str(out)])
    assert r.exit_code == 1 and "is not in" in r.output


def test_generate_option_takes_n_or_source_n(arcforge_home, tmp_path):
    from arcforge.cli.build import parse_generate

    assert parse_generate(["5", "re_arc=100", "barc=0"]) == {"*": 5, "re_arc": 100, "barc": 0}
    for bad in ("x", "re_arc=", "=3", "re_arc=-1", "re_arc=1.5"):
        r = runner.invoke(app, ["build", "--out", str(tmp_path / "o"), "--generate", bad])
        assert r.exit_code == 2 and "--generate" in r.output and "SOURCE=N" in r.output, (bad, r.output)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(GOOD))
    r = runner.invoke(
        app, ["build", "--out", str(tmp_path / "o"), "--local", str(folder), "--generate", "mine=3"]
    )
    assert r.exit_code == 1 and "Error: --generate mine=3: 'mine' is not a generator source" in r.output
