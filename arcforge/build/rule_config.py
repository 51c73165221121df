"""The limits of the execution check (``arcforge.build.rules``): one home for them, read by the build, the
CLI and the benchmark, and part of every cache key (``arcforge.build.rule_cache``)."""

from __future__ import annotations

from dataclasses import dataclass

CHECK_VERSION = 2  # how a check runs (part of every cache key: results of another version are not reused)


@dataclass(frozen=True)
class RuleConfig:
    """Limits of the execution check (one home for them: the build, the CLI and the benchmark read it)."""

    call_s: float = 1.0  # CPU seconds a call may take
    wall_s: float = 5.0  # wall-clock seconds a call may take (a program that waits, not computes)
    memory_mb: int = 1024  # address space of the worker
    max_failures: int = (
        3  # a program whose first calls all fail (time, memory, crash) is given up after these
    )
    max_total_failures: int = 10  # ... and any program after this many failed calls
    program_s: float = 5.0  # CPU seconds a program's calls may take in all; then it is given up
    batch: int = 64  # tasks asked together (one request per pair), finished before the next ones
    unit: int = 32  # programs that share one sandbox (one interpreter start)
    workers: int = 1  # sandboxes run side by side

    def tag(self) -> str:
        """The limits a failure depends on (a failure is run again under other limits)."""
        return (
            f"v{CHECK_VERSION},call_s={self.call_s},wall_s={self.wall_s},memory_mb={self.memory_mb},"
            f"max_failures={self.max_failures},max_total_failures={self.max_total_failures},"
            f"program_s={self.program_s},batch={self.batch}"
        )
