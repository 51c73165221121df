"""``arcforge sources`` and ``arcforge fetch``: list the pinned sources, and fill the verified cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from arcforge import paths
from arcforge.cli.console import cli_progress, console, err_console, reports
from arcforge.cli.options import Flag, JsonOpt, ManifestsOpt, MirrorOpt
from arcforge.sources import fetch as fetch_lib
from arcforge.sources import lock
from arcforge.sources.manifest import Manifest, load_manifests, select

STATUS_STYLE = {"cached": "green", "fetched": "green", "failed": "red", "unavailable": "yellow"}


def source_info(m: Manifest) -> dict:
    """One row of ``arcforge sources``. A source pinned by revision shows the commit locked on its first
    fetch (``commit`` null until then, or when it was fetched from a mirror: unresolved)."""
    m = lock.locked(m)
    path = fetch_lib.cached_path(m)
    pin = lock.find_pin(m)
    return {
        "name": m.name,
        "kind": m.kind,
        "repo": m.repo,
        "commit": m.commit or None,
        "short_commit": m.short_commit or None,
        "revision": m.revision or None,  # a branch or tag, locked to ``commit`` on first fetch
        "license": m.license,
        "format": m.format,
        "splits": list(m.splits),
        "role": m.role,
        "bytes": pin.bytes if pin is not None and pin.bytes else None,  # the kept files' size, once pinned
        "cached": path is not None,
        "path": str(path) if path else None,
        "digest": pin.digest if pin else None,
        "pinned_in": str(pin.lock_path) if pin else None,
    }


def human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"  # pragma: no cover


@dataclass
class FetchReport:
    """What ``arcforge fetch`` reports: one result per source; ok when every one is."""

    results: list[fetch_lib.FetchResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "sources": [r.to_dict() for r in self.results]}


def _print_sources(report: dict) -> None:
    rows = report["sources"]
    table = Table(box=None, header_style="bold")
    for col in ("name", "kind", "repo@commit", "size", "license", "format", "splits", "role", "cached"):
        table.add_column(
            col,
            overflow="fold",
            no_wrap=col not in ("repo@commit", "splits"),
            justify="right" if col == "size" else "left",
        )
    for r in rows:
        table.add_row(
            r["name"],
            r["kind"],
            _pinned(r),
            human_bytes(r["bytes"]),
            r["license"],
            r["format"],
            ", ".join(r["splits"]),
            r["role"],
            "[green]yes[/]" if r["cached"] else "no",
        )
    console.print(table)
    n = sum(r["cached"] for r in rows)
    kinds = ", ".join(f"{sum(r['kind'] == k for r in rows)} {k}" for k in sorted({r["kind"] for r in rows}))
    console.print(
        f"{len(rows)} sources ({kinds}); {n} cached under {escape(str(paths.sources_dir()))}", highlight=False
    )


def _pinned(r: dict) -> str:
    """``repo@abc1234``; a revision: ``repo@main -> abc1234`` once locked, else why it is not."""
    if not r["revision"]:
        return f"{r['repo']}@{r['short_commit']}"
    if r["commit"]:
        return f"{r['repo']}@{r['revision']} -> {r['short_commit']}"
    why = "commit unresolved: fetched from a mirror" if r["digest"] else "not locked until fetched"
    return f"{r['repo']}@{r['revision']} ({why})"


@reports(_print_sources)
def sources_cmd(json_: JsonOpt = False, manifests: ManifestsOpt = None) -> dict:
    """List the known sources: kind, repo@commit, size, license, format, splits, role, and whether they are
    cached. The size is that of the files a source keeps, as pinned ("?" until a first fetch pins it). A Hub
    source pinned by a branch or tag shows it with the commit its first fetch locked ("repo@main -> abc1234").

    Example: arcforge sources --json
    """
    return {"sources": [source_info(m) for m in load_manifests(manifests).values()]}


def _print_report(report: FetchReport) -> None:
    results = report.results
    table = Table(box=None, header_style="bold")
    for col in ("name", "status", "files", "digest", "time"):
        table.add_column(col, overflow="fold", justify="right" if col in ("files", "time") else "left")
    for r in results:
        table.add_row(
            r.name,
            f"[{STATUS_STYLE[r.status]}]{r.status}[/]",
            str(r.files) if r.ok else "",
            (r.digest or "")[:23],
            f"{r.seconds:.1f}s",
        )
    console.print(table)
    _print_notes(results)
    counts = {s: sum(r.status == s for r in results) for s in fetch_lib.STATUSES}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items() if n), highlight=False)


def _locked_note(r: fetch_lib.FetchResult) -> str:
    """What the first fetch of a source pinned by revision locked."""
    if r.commit:
        return (
            f"{r.name} follows revision {r.revision!r}: locked commit {r.commit} with its files' digests "
            f"in {r.pin_path}; later fetches and builds use it (arcforge fetch --update {r.name} moves it)"
        )
    return (
        f"{r.name} follows revision {r.revision!r}, but a mirror cannot say which commit it holds: the "
        f"commit stays unresolved; the files' digests are recorded in {r.pin_path} (arcforge fetch --force "
        f"{r.name} with Hub access locks the commit if its files are these)"
    )


def _print_notes(results: list[fetch_lib.FetchResult]) -> None:
    """Below the table: where the cache is, the digests first recorded, and why sources failed."""
    if any(r.ok for r in results):
        console.print(
            f"cache: {escape(str(paths.sources_dir()))}/<owner>/<repo>/<commit>/",
            highlight=False,
            soft_wrap=True,
        )
    for r in results:
        if r.recorded_pin and r.revision:
            console.print(f"[yellow]note:[/] {escape(_locked_note(r))}", highlight=False, soft_wrap=True)
        elif r.recorded_pin:
            console.print(
                f"[yellow]note:[/] {r.name} had no pinned digest; recorded {r.digest} in "
                f"{escape(str(r.pin_path))} (later fetches are checked against it)",
                highlight=False,
                soft_wrap=True,
            )
    for r in results:
        if not r.ok:
            err_console.print(
                f"[bold red]{r.status}:[/] {escape(r.error or '')}", highlight=False, soft_wrap=True
            )
            if r.hint:
                err_console.print(f"  [dim]hint:[/] {escape(r.hint)}", highlight=False, soft_wrap=True)


def _check_update(chosen: list[Manifest]) -> None:
    """``--update`` with named sources: each must be pinned by a revision (a commit does not move)."""
    fixed = [m for m in chosen if not m.revision]
    if fixed:
        raise typer.BadParameter(
            f"{fixed[0].name} is pinned by its commit in {fixed[0].path}; --update moves only sources "
            "pinned by a revision (a branch or tag)",
            param_hint="--update",
        )


@reports(_print_report, exit_code=lambda report: 0 if report.ok else 1)
def fetch_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Sources to fetch (see `arcforge sources`).", metavar="NAME", show_default=False),
    ] = None,
    all_: Annotated[bool, Flag("--all", help="Fetch every known source.")] = False,
    mirror: MirrorOpt = None,
    force: Annotated[bool, Flag("--force", help="Download again even if the cache is valid.")] = False,
    update: Annotated[
        bool,
        Flag(
            "--update",
            help="Move sources pinned by a branch or tag (revision) to the commit it names now, "
            "and lock that one instead.",
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=32, help="Sources fetched in parallel.")
    ] = fetch_lib.FETCH_WORKERS,
    json_: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> FetchReport:
    """Download sources at their pinned commits into the verified cache (from GitHub or --mirror).

    A Hub source pinned by a branch or tag is fetched at the commit locked on its first fetch; --update
    moves it to the commit the branch or tag names now.

    Exit code 1 if any source failed or is not available (the others are still fetched).

    Example: arcforge fetch --all --mirror ../shared/arc-sources
    """
    if not names and not all_:
        raise typer.BadParameter("name the sources to fetch, or use --all", param_hint="NAME")
    if names and all_:
        raise typer.BadParameter("give source names or --all, not both", param_hint="--all")
    known = load_manifests(manifests)
    chosen = list(known.values()) if all_ else select(known, names or [])
    if update and not all_:
        _check_update(chosen)
    if any(m.kind == paths.HUB_KIND for m in chosen):
        import arcforge.hub.download  # noqa: F401  (registers the Hub client; imports huggingface_hub)
    with cli_progress(json_) as progress:
        return FetchReport(
            fetch_lib.fetch_sources(
                chosen, mirror=mirror, force=force, update=update, progress=progress, workers=workers
            )
        )
