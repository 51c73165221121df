"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes.

Every error carries a one-line message that names the file/source and the problem, and an optional
``hint`` saying what to do about it. The CLI prints ``Error: <message>`` and, if present, the hint.
"""

from __future__ import annotations

import base64
import functools
import os
import re

# Hugging Face tokens (hf_..., also inside URLs or percent-encoded), and whatever follows an
# Authorization/Bearer header.
_TOKEN_RE = re.compile(r"\bhf(?:_|%5[fF])(?:[A-Za-z0-9_]|%[0-9a-fA-F]{2}){6,}")
_AUTH_RE = re.compile(
    r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token|basic)?\s*|\bbearer\s+)[^\s'\",})\]]+"
)
_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN")
REDACTED = "***"
# Terminal control: C0 (but tab and newline), DEL, C1 (CSI, OSC...), and the bidirectional overrides that
# reorder what is shown. Text from the network or a file name is data: shown as \xNN / \uNNNN, never obeyed.
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_secrets: set[str] = set()  # tokens arcforge obtained (a stored login has no environment variable)


def printable(text: str) -> str:
    """``text`` safe to show on a terminal: valid UTF-8 (bytes of a non-UTF-8 file name, kept by Python as
    surrogates, become U+FFFD) and no control character (ESC, CR, BEL, C1, bidi overrides: escaped)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL_RE.sub(_escape_control, text)


def _escape_control(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def register_secret(token: str | None) -> None:
    """Redact ``token`` from every message from now on (the Hub code calls this with the token it uses)."""
    if token and len(token.strip()) >= 8:
        _secrets.add(token.strip())


@functools.lru_cache(maxsize=64)
def _secret_re(secret: str) -> re.Pattern[str]:
    """``secret`` in any encoding a server may echo it in: as is, percent-encoded (any mix of characters,
    either case), and without its ``hf_`` prefix."""
    body = secret.removeprefix("hf_") if len(secret) - 3 >= 8 else secret
    prefix = secret[: len(secret) - len(body)]

    def char(c: str) -> str:
        return f"(?:{re.escape(c)}|%{ord(c):02x})" if ord(c) < 0x80 else re.escape(c)

    pre = "".join(char(c) for c in prefix)
    return re.compile(
        f"(?i)(?:{pre})?" + "".join(char(c) for c in body) if pre else "(?i)" + "".join(char(c) for c in body)
    )


def _known_secrets() -> set[str]:
    found = set(_secrets)
    for env in _TOKEN_ENVS:
        value = os.environ.get(env, "").strip()
        if len(value) >= 8:
            found.add(value)
    return found


def redact(text: str) -> str:
    """``text`` with every Hub token replaced: ``hf_...`` (also percent-encoded), a bearer header, the value
    of ``$HF_TOKEN`` or of a token arcforge obtained, in any of the encodings ``_secret_re`` knows."""
    for secret in _known_secrets():
        for variant in (secret, base64.b64encode(secret.encode()).decode()):
            text = _secret_re(variant).sub(REDACTED, text)
    text = _TOKEN_RE.sub("hf_" + REDACTED, text)
    return _AUTH_RE.sub(lambda m: m.group(1) + REDACTED, text)


def _unwrap_worker(message: str) -> str:
    """The original one-line message of an error re-raised from a worker process (torch's DataLoader
    rebuilds it as ``Caught XError in DataLoader worker process 0.\nOriginal Traceback ...``)."""
    if "\nOriginal Traceback" not in message:
        return message
    last = message.rstrip().rsplit("\n", 1)[-1]
    name, sep, text = last.partition(": ")
    return text if sep and name.replace(".", "").replace("_", "").isalnum() else last


class ArcforgeError(Exception):
    """Base class of every error arcforge raises on purpose. Message and hint never carry a token."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = printable(redact(_unwrap_worker(str(message))))
        hint = None if hint is None else printable(redact(str(hint)))
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ManifestError(ArcforgeError):
    """A manifest file is missing, unparsable or has an invalid field."""


class FetchError(ArcforgeError):
    """A source could not be downloaded, verified or placed in the cache."""


class DigestMismatchError(FetchError):
    """Downloaded content does not match the pinned digest (the cache is left as it was)."""


class UnsafeArchiveError(FetchError):
    """An archive entry would escape the target tree or is otherwise unsafe; names the entry."""


class SourceUnavailableError(FetchError):
    """A source is not in the cache and cannot be reached (no network, not in the mirror)."""


class FormatError(ArcforgeError):
    """An upstream file does not follow the expected format (used for quarantine reasons)."""


class ShardError(ArcforgeError):
    """Parquet shards are missing, unreadable or do not match the schema."""


class SandboxError(ArcforgeError):
    """Upstream code could not be started in the sandbox (modules do not import, the worker dies at once)."""


class BuildError(ArcforgeError):
    """The build pipeline failed (including --strict with quarantined tasks)."""


class DedupError(ArcforgeError):
    """Decontamination could not be carried out (e.g. no evaluation reference found)."""


class TrainError(ArcforgeError):
    """The trainer was misconfigured or a checkpoint could not be used."""


class ExportError(ArcforgeError):
    """An export could not be made: a bad selection, an evaluation task bound for training, an output folder
    that is not arcforge's."""


class PublishError(ArcforgeError):
    """Publishing to the Hugging Face Hub failed; the hint says what to do."""
