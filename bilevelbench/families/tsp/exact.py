"""The exact ``tsp-interdiction`` solver as a submission: the tour-edge search with Held-Karp inside."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactTSPSolver(Solver):
    name = "exact"
    description = "tsp-interdiction: depth-B search over the current tour's edges, Held-Karp follower"
    time_limit = 600.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = bilevelbench.__version__
        self.budget = 0

    def setup(self, spec: TaskSpec, train_set) -> None:
        self.budget = int(spec.structure.budget)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        from bilevelbench.families.tsp.tour import interdict_search

        d = np.asarray(params["distances"], float)
        out = np.stack([interdict_search(d[i], self.budget).removed.reshape(-1) for i in range(len(d))])
        return Prediction(y=out)
