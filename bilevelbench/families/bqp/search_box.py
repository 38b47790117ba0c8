"""Where a search-based baseline looks for the leader's decision ``y``: a box from labels a submission may read.

A submission's ``setup`` receives the ``train`` split; the file behind it also holds the ``valid`` split
(the evaluated split's labels are withheld from the solver's copy). :func:`search_box` widens the range of
the first labelled one of those splits, and falls back to a label-free heuristic box.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import BilevelBenchError
from bilevelbench.families.bqp.problem import BQPStructure

logger = logging.getLogger(__name__)


def certified_labels(split: InstanceSet | None) -> tuple[np.ndarray, np.ndarray] | None:
    """``(params (P, m + n) as [c, d], y (P, m))`` of the instances of ``split`` with a certified, finite label.

    None when the split is missing or empty, has no labels (unlabelled or withheld), or none is certified.
    """
    if split is None or len(split) == 0:
        return None
    labels = split.labels
    if "y" not in labels or "status" not in labels:
        return None
    y = np.asarray(labels["y"], dtype=float)
    usable = np.isin(np.asarray(labels["status"]).astype(str), SOLUTION_STATUSES) & np.all(np.isfinite(y), axis=1)
    if not np.any(usable):
        return None
    params = np.hstack([np.asarray(split.params["c"], dtype=float), np.asarray(split.params["d"], dtype=float)])
    return params[usable], y[usable]


def label_box(split: InstanceSet | None, margin: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Range of the certified labels' ``y`` in ``split``, widened by ``margin`` times the range on each side.

    Parameters
    ----------
    split : InstanceSet or None
        A labelled split (unlabelled or withheld labels are skipped).
    margin : float
        Relative widening; each side moves by ``margin * max(range, 1)``.

    Returns
    -------
    tuple of numpy.ndarray or None
        ``(lower, upper)``, or None when the split has no certified label.
    """
    certified = certified_labels(split)
    if certified is None:
        return None
    y = certified[1]
    lo, hi = y.min(axis=0), y.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1.0)
    return lo - pad, hi + pad


def structure_box(s: BQPStructure) -> tuple[np.ndarray, np.ndarray]:
    """The label-free box ``+-R``, ``R = 2 max(1, ||b||_inf, ||h||_inf)`` (a heuristic, not a bound)."""
    radius = 2.0 * max(1.0, float(np.max(np.abs(s.b))), float(np.max(np.abs(s.h))))
    return np.full(s.m, -radius), np.full(s.m, radius)


def readable_splits(evaluated_split: str, train_set: InstanceSet | None) -> list[tuple[str, InstanceSet]]:
    """The ``train`` and ``valid`` splits a solver's setup may read, in that order, never ``evaluated_split``."""
    out: list[tuple[str, InstanceSet]] = []
    if train_set is not None and evaluated_split != "train":
        out.append(("train", train_set))
    path: Path | None = getattr(train_set, "path", None)
    if path is not None and evaluated_split != "valid":
        try:
            ds = InstanceSet.open(path)
            if "valid" in ds.split_names:
                out.append(("valid", ds.split("valid")))
        except BilevelBenchError as exc:
            logger.warning("cannot read the valid split of %s: %s", path, exc)
    return out


def search_box(structure: BQPStructure, splits: list[tuple[str, InstanceSet]], margin: float
               ) -> tuple[tuple[np.ndarray, np.ndarray], str]:
    """The label box of the first labelled split of ``splits``, else :func:`structure_box`; and its source."""
    for name, split in splits:
        box = label_box(split, margin)
        if box is not None:
            return box, f"labels of the {name} split"
    return structure_box(structure), "+-2 max(1, |b|_inf, |h|_inf)"
