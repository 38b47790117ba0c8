"""Versions of the packages that made a file (recorded as provenance, left out of the content digest)."""

from __future__ import annotations

import sys
from importlib import metadata


def package_versions() -> dict[str, str]:
    """Python and the numerical packages' versions (those installed)."""
    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("numpy", "scipy", "h5py", "highspy", "pyscipopt", "gurobipy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions

