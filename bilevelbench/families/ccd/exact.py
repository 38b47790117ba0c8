"""The control co-design reference solver: the best-known search of the labels (not a certificate)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.solvers import Prediction, Solver, TaskSpec


class BestKnownSearchSolver(Solver):
    """The labels' best-known search (grid/multistart + projected gradient, :mod:`.best_known`)."""

    name = "exact"
    description = "ccd: the best-known search of the labels (grid/multistart + projected gradient; not a certificate)"

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} (best-known search)"
        self._state = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        self._state = (spec.family, spec.structure)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        from bilevelbench.families.ccd.best_known import search

        family, s = self._state
        rows = {k: np.asarray(v) for k, v in params.items()}
        return Prediction(y=search(family, s, rows)["design"])
