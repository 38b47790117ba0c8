"""The family registry: every installed family, found through the entry-point group ``bilevelbench.families``.

The built-in families register exactly as a third-party plugin does, with one line each in ``pyproject.toml``::

    [project.entry-points."bilevelbench.families"]
    my-family = "my_package.family:FAMILY"

The entry point's name is the family's name; its object is a :class:`~bilevelbench.core.family.Family` instance
(or subclass, which is instantiated). Entry points are loaded lazily and once per process. A plugin that fails
to load is reported (a warning, and the error again if its family is asked for) without breaking the others.
"""

from __future__ import annotations

import importlib
import logging
from importlib import metadata

from bilevelbench.core.family import Family
from bilevelbench.errors import UnknownFamilyError

log = logging.getLogger(__name__)

GROUP = "bilevelbench.families"

_FAMILIES: dict[str, Family] | None = None
_BROKEN: dict[str, str] = {}
_EXTRA: dict[str, Family] = {}


def _load() -> dict[str, Family]:
    global _FAMILIES
    if _FAMILIES is not None:
        return _FAMILIES
    found: dict[str, Family] = {}
    _BROKEN.clear()
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in found:
            continue   # the first distribution on sys.path wins, as for imports
        try:
            obj = ep.load()
            family = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"
            log.warning("family plugin %r (%s) failed to load: %s", ep.name, ep.value, _BROKEN[ep.name])
            continue
        if not isinstance(family, Family):
            _BROKEN[ep.name] = f"{ep.value} is a {type(family).__name__}, not a bilevelbench Family"
            log.warning("family plugin %r: %s", ep.name, _BROKEN[ep.name])
            continue
        if family.name != ep.name:
            _BROKEN[ep.name] = f"{ep.value} describes family {family.name!r}, not {ep.name!r}"
            log.warning("family plugin %r: %s", ep.name, _BROKEN[ep.name])
            continue
        found[ep.name] = family
    _FAMILIES = found
    return found


def families() -> dict[str, Family]:
    """Every installed family by name, in name order."""
    merged = {**_load(), **_EXTRA}
    return dict(sorted(merged.items()))


def family_names() -> list[str]:
    """The installed families' names, sorted."""
    return list(families())


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises
    ------
    UnknownFamilyError
        If no installed plugin provides it (or its plugin failed to load); the message lists the installed
        families and says how to add one.
    """
    found = families()
    if name in found:
        return found[name]
    if name in _BROKEN:
        raise UnknownFamilyError(f"the plugin of family {name!r} is installed but failed to load "
                                 f"({_BROKEN[name]})")
    raise UnknownFamilyError(f"no installed family is called {name!r}; installed: {', '.join(found) or 'none'}. "
                             f"A family comes from a plugin registering an entry point in the group {GROUP!r} "
                             "(docs/families/adding-a-family.md): install the package that provides it")


def find_family(name: str) -> Family | None:
    """The family called ``name``, or None when no installed plugin provides it (for renderers that fall back
    to what every family shares, such as the leaderboard's common columns)."""
    try:
        return get_family(name)
    except UnknownFamilyError:
        return None


def broken_plugins() -> dict[str, str]:
    """Entry points that failed to load, with the reason."""
    _load()
    return dict(_BROKEN)


def register(family: Family) -> None:
    """Register ``family`` for this process without an entry point (notebooks, tests of a family in progress)."""
    if not isinstance(family, Family):
        raise TypeError(f"expected a bilevelbench Family, got {type(family).__name__}")
    _EXTRA[family.name] = family


def unregister(name: str) -> None:
    """Forget a family registered with :func:`register`."""
    _EXTRA.pop(name, None)


def reload() -> None:
    """Discover the entry points again (after installing a plugin into the running process's path)."""
    global _FAMILIES
    _FAMILIES = None
    importlib.invalidate_caches()
