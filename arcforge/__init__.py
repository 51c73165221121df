"""arcforge: compile the public ARC datasets into one clean, decontaminated, Hub-ready Parquet dataset."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("arcforge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0"
