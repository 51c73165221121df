"""``python -m experiments grokfast|rope`` (from the repository root, with arcforge[train] installed)."""

from experiments.cli import experiment_app

experiment_app()
