"""Measure what `pip install arcforge` downloads: every wheel of the base install (and of light extras).

    python benchmarks/bench_install.py

For each install it runs ``pip download`` of arcforge's own wheel plus its requirements (read from
pyproject.toml) into an empty temporary folder, for CPython 3.11 on manylinux x86_64, and sums the sizes
of the wheels it got. Writes ``benchmarks/results/install.json``. The goal for the base install is
<= 150 MB of wheels.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PLATFORM = [
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--implementation",
    "cp",
    *[
        x
        for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
        for x in ("--platform", p)
    ],
]
# Extras measured here; `train` is left out on purpose: it is torch (hundreds of MB, CPU build).
INSTALLS = {"arcforge": [], "arcforge[png]": ["png"]}


def download(reqs: list[str], dest: Path) -> dict[str, int]:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(dest), *PLATFORM, *reqs],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return {f.name: f.stat().st_size for f in sorted(dest.glob("*.whl"))}


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    report: dict = {
        "how": "pip download of arcforge's wheel and its requirements for CPython 3.11, "
        "manylinux x86_64, into an empty folder; MB = 10^6 bytes",
        "limit_mb": 150,
        "installs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp) / "own"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(own), str(ROOT)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        own_wheel = next(own.glob("*.whl"))
        for name, extras in INSTALLS.items():
            reqs = list(project["dependencies"])
            for e in extras:
                reqs += project["optional-dependencies"][e]
            sizes = download(reqs, Path(tmp) / name)
            sizes[own_wheel.name] = own_wheel.stat().st_size
            total = sum(sizes.values())
            report["installs"][name] = {
                "wheels": len(sizes),
                "bytes": total,
                "mb": round(total / 1e6, 1),
                "largest": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:5]),
            }
    report["base_within_limit"] = report["installs"]["arcforge"]["mb"] <= report["limit_mb"]
    (HERE / "results" / "install.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: {"wheels": v["wheels"], "mb": v["mb"]} for k, v in report["installs"].items()}))
    return 0 if report["base_within_limit"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
