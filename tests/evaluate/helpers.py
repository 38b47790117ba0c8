"""Shared helpers of the evaluator tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.predictions import write_predictions


def labels_of(dataset: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    part = InstanceSet.open(dataset).split(split)
    return part.labels["y"], part.labels["z"]


def write_solver(folder: Path, body: str, name: str = "solver.py") -> Path:
    """Write a solver module from source text and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def exact_predictions(dataset: Path, out: Path, **kw) -> Path:
    y, z = labels_of(dataset)
    return write_predictions(out, y, np.arange(len(y)), z=z, solver_name="labels", **kw)
