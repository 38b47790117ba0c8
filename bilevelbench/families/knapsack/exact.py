"""The knapsack exact reference solver: the labels' SCIP model at zero gap, one instance at a time."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactKnapsackSolver(Solver):
    """SCIP on ``max v . y, W y <= floor(c)``, gap limits 0, one thread (:func:`.certify.solve_scip`)."""

    name = "exact"
    description = "knapsack: SCIP at zero gap, one thread, points checked as the labels are"
    time_limit = 60.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version('scip')})"
        self._structure = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        self._structure = spec.structure

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        """Answers (B, n); NaN rows where SCIP found no checked point."""
        from bilevelbench.families.knapsack.certify import solve_scip

        s = self._structure
        capacity = np.atleast_2d(np.asarray(params["capacity"], dtype=np.float64))
        y = np.full((capacity.shape[0], s.n_items), np.nan)
        for k in range(capacity.shape[0]):
            label = solve_scip(s, capacity[k], self.time_limit)
            if label.status in SOLUTION_STATUSES:
                y[k] = label.y
        return Prediction(y=y)
