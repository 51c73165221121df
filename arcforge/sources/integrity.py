"""Content digests beside files arcforge writes and reads back later (the build cache), so that a file
changed on disk (a flipped bit, a truncation, another program) is noticed instead of trusted.

``seal(path)`` writes ``<path>.sha256`` holding the sha256 of the file's bytes (atomically);
``intact(path)`` is True only when that digest file exists and matches. A missing or wrong digest means
"not trusted": the caller rebuilds the file or reports it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes (streamed by ``hashlib.file_digest``)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def seal(path: Path) -> None:
    """Record the digest of ``path`` next to it."""
    path = Path(path)
    target = _digest_path(path)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    tmp.write_text(sha256_of(path) + "\n", encoding="ascii")
    os.replace(tmp, target)


def intact(path: Path) -> bool:
    """``path`` exists and its bytes still have the recorded digest."""
    path = Path(path)
    try:
        want = _digest_path(path).read_text(encoding="ascii").strip()
        return len(want) == 64 and sha256_of(path) == want
    except (OSError, UnicodeDecodeError):
        return False


def discard(path: Path) -> None:
    """Remove a file and its digest (an entry that failed its check)."""
    for p in (Path(path), _digest_path(Path(path))):
        p.unlink(missing_ok=True)
