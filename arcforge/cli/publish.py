"""``arcforge publish``: push a built dataset to the Hugging Face Hub (or preview / export the repo tree)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from arcforge.cli.console import cli_progress, console, reports
from arcforge.cli.options import DEFAULT_DATA, DataOpt, Flag, JsonOpt
from arcforge.errors import printable


def _human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _say(text: str) -> None:
    """One plain line; the URLs in it come from the Hub: network text is shown escaped, never obeyed."""
    console.print(printable(text), highlight=False, markup=False, soft_wrap=True)


def _print_result(result) -> None:
    # One plain line per operation (no table wrapping), so paths and digests stay copyable and greppable.
    for op in result.operations:
        size = "-" if op.size is None else str(op.size)
        _say(f"{op.kind:<6} {size:>12}  {op.sha256 or '-':<64}  {op.path_in_repo}")
    adds = sum(op.kind == "add" for op in result.operations)
    dels = sum(op.kind == "delete" for op in result.operations)
    dels_text = str(dels) if result.deletions_known else "not computed (the Hub was not contacted)"
    _say(f"{adds} additions ({_human_size(result.total_bytes)}), deletions: {dels_text}")
    if result.skipped:
        _say(f"not part of the repo (skipped): {', '.join(result.skipped)}")
    if result.mode == "dry-run":
        _say(f"dry run: nothing was sent to {result.repo_id}@{result.revision}")
    elif result.mode == "to-dir":
        _say(f"wrote the repo tree of {result.repo_id} to {result.to_dir}")
    else:
        _say(f"committed to {result.repo_id}@{result.revision}: {result.commit_url}")
        if result.pr_url:
            _say(f"pull request: {result.pr_url}")
        if result.tag:
            _say(f"tagged: {result.tag}")


@reports(_print_result)
def publish_cmd(
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo, ORG/NAME.")],
    data: DataOpt = DEFAULT_DATA,
    private: Annotated[
        bool, Flag("--private", help="Create the repo private (refused if it already exists and is public).")
    ] = False,
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", help="Branch to commit to (created if missing). Default: main.", show_default=False
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Tag the new commit, e.g. v1.0.", show_default=False)
    ] = None,
    create_pr: Annotated[
        bool, Flag("--create-pr", help="Open a pull request instead of committing to the branch.")
    ] = False,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="Commit title.", show_default=False)
    ] = None,
    dry_run: Annotated[
        bool,
        Flag("--dry-run", help="Print the exact operations (path, size, sha256); contacts nothing remote."),
    ] = False,
    to_dir: Annotated[
        Path | None,
        typer.Option(
            "--to-dir",
            help="Write exactly the repo tree that would "
            "be pushed into this (new or empty) folder; contacts "
            "nothing remote.",
            show_default=False,
        ),
    ] = None,
    allow_unknown_license: Annotated[
        bool, Flag("--allow-unknown-license", help="Publish sources whose license is 'unknown'.")
    ] = False,
    json_: JsonOpt = False,
) -> Any:
    """Push a built dataset to the Hugging Face Hub in ONE commit: shards, card, reports, provenance.

    Shards of a previous build that this build no longer has are deleted in the same commit.
    The token comes from HF_TOKEN or `hf auth login` and is never printed.

    Example: arcforge publish --data arc-dataset --repo-id your-name/arc-clean --dry-run
    """
    from arcforge.errors import PublishError
    from arcforge.hub import publish as pub  # imports huggingface_hub: only when the command runs

    if dry_run and to_dir is not None:
        raise PublishError(
            "use either --dry-run or --to-dir, not both",
            hint="--dry-run prints the operations; --to-dir writes the repo tree",
        )
    opts = pub.PublishOptions(
        repo_id=repo_id,
        private=private,
        revision=revision,
        tag=tag,
        create_pr=create_pr,
        message=message,
        allow_unknown_license=allow_unknown_license,
    )
    with cli_progress(json_) as progress:
        if dry_run:
            return pub.plan(data, opts, progress=progress)
        if to_dir is not None:
            return pub.export_tree(data, to_dir, opts, progress=progress)
        return pub.publish(data, opts, progress=progress)
