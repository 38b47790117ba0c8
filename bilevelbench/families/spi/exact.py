"""The exact ``spi-grid`` solver as a submission: the MILP of :func:`~bilevelbench.families.spi.grid.interdict_milp`."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactSPISolver(Solver):
    name = "exact"
    description = "spi-grid: the interdiction MILP (LP duality of the shortest path) in SCIP at zero gap"
    time_limit = 600.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version('scip')})"
        self.budget = 0

    def setup(self, spec: TaskSpec, train_set) -> None:
        self.budget = int(spec.structure.budget)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        from bilevelbench.families.spi.grid import interdict_milp

        costs = np.asarray(params["costs"], float)
        d = np.asarray(params["interdiction_cost"], float)
        out = np.stack([interdict_milp(costs[i], d[i], self.budget, self.time_limit).x.reshape(-1)
                        for i in range(len(costs))])
        return Prediction(y=out)
