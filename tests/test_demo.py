"""CI runs a shortened demo end to end: mirror fetch -> build --exclude-eval -> train -> eval -> PNGs."""

import json

from PIL import Image
from typer.testing import CliRunner

from arcforge.cli.app import app


def test_short_demo_end_to_end(tmp_path, arcforge_home, shared_sources):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--steps", "4", "--tasks", "96", "--eval-tasks",
                                 "24", "--mirror", str(shared_sources), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert len(res["fetched"]) == 11  # the 11 mirrored sources; the 3 unmirrored are unavailable
    for png in ("loss.png", "gallery.png"):
        with Image.open(out / png) as im:
            assert im.width > 10 and im.height > 10
    assert sum(f["tasks"] for f in res["per_family"].values()) == 24
    card = (out / "data" / "README.md").read_text()
    assert "synthetic" in card and "arc_agi_1" in card
