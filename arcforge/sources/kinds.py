"""Source kinds as plug-ins, registered by name (as ``arcforge.formats`` registers upstream layouts).

A manifest names its kind (``kind = "repo"`` when absent). The kind decides what the manifest's own table
of settings means and checks it when the manifest is loaded:

- ``repo``: files of a GitHub repository at a pinned commit, read by format plug-ins (``[[tasks]]``).
- ``generator``: a repository at a pinned commit whose *programs* make tasks. Its ``[generator]`` table
  names the driver (``arcforge.sources.generate``) and the upstream code files; the programs run only in
  the sandbox (``arcforge.sources.sandbox``). Its ``[[tasks]]`` still map the repository's files, if any.

Adding a kind = one module that calls ``@register("name")`` and is listed in ``_BUILTIN_MODULES``.
A kind's settings are the manifest table it names in ``table`` (``[generator]``, ``[hub]``, ...); ``repo``
takes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from arcforge.errors import ManifestError
from arcforge.formats.registry import Registry

DEFAULT_KIND = "repo"


class SourceKind(Protocol):
    name: ClassVar[str]
    table: ClassVar[str | None]  # the manifest table holding its settings (None: the kind takes none)

    def check(self, settings: Mapping[str, Any], where: Path) -> dict[str, Any]:
        """Validate the kind's settings table (``{}`` when the manifest has none); return it normalized.
        Raise ``ManifestError`` naming ``where`` and the field."""
        ...


_BUILTIN_MODULES = ("arcforge.sources.kinds", "arcforge.sources.generator_kind", "arcforge.sources.hub_kind")
_KINDS: Registry[type[SourceKind]] = Registry("source kind", "kinds", ManifestError, _BUILTIN_MODULES)
register = _KINDS.register
names = _KINDS.names


def get(name: str) -> SourceKind:
    return _KINDS.get(name)()


def check_settings(kind: str, data: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """The kind's settings from a manifest dict: its table named after the kind, checked by the kind."""
    try:
        impl = get(kind)
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from None
    if impl.table is None:
        return impl.check({}, where)
    settings = data.get(impl.table, {})
    if not isinstance(settings, dict):
        raise ManifestError(f"{where}: [{impl.table}] must be a table")
    return impl.check(settings, where)


@register("repo")
class RepoKind:
    """Files of a repository at a pinned commit; nothing to configure beyond ``files`` and ``[[tasks]]``."""

    name = "repo"
    table = None

    def check(self, settings: Mapping[str, Any], where: Path) -> dict[str, Any]:
        return {}
