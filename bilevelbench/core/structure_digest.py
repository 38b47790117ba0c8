"""One digest of a family's structure arrays, for families that keep them in a name -> array mapping."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the arrays in name order: each name, then the array's raw bytes (C order).

    Parameters
    ----------
    arrays : mapping of str to array
        The structure's arrays (``Structure.arrays()``); dtypes and shapes are fixed by the family.

    Returns
    -------
    str
        The hex digest (what weight files record as ``structure_hash``).
    """
    h = hashlib.sha256()
    for key, value in sorted(arrays.items()):
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()
