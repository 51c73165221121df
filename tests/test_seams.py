"""The architecture's seams, asserted: the core never pulls in the CLI, typer, rich, torch or the Hub."""

import subprocess
import sys

CORE = ["arcforge.task", "arcforge.grids", "arcforge.manifest", "arcforge.formats", "arcforge.shards",
        "arcforge.errors", "arcforge.paths", "arcforge.provenance", "arcforge.publish_plan", "arcforge.hub_data",
        "arcforge.build", "arcforge.ingest", "arcforge.members", "arcforge.card", "arcforge.stats", "arcforge.render",
        "arcforge.synthetic", "arcforge.fetch", "arcforge.archive", "arcforge.download", "arcforge.lock",
        "arcforge.canon", "arcforge.dedup", "arcforge.overlap"]


def _imported_after(modules: list[str]) -> set[str]:
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_does_not_import_cli_torch_or_hub():
    mods = _imported_after(CORE)
    forbidden = {"typer", "rich", "torch", "huggingface_hub", "arcforge.cli"}
    assert not {m.split(".")[0] if not m.startswith("arcforge.cli") else "arcforge.cli" for m in mods} & forbidden
