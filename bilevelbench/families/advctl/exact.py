"""The exact ``adv-control`` solver as a submission: the KKT-SOS1 reformulation solved by SCIP."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactAdvSolver(Solver):
    name = "exact"
    description = "adv-control: KKT-SOS1 reformulation of the adversary, SCIP to a relative gap of 1e-6"
    time_limit = 600.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = bilevelbench.__version__
        self.kkt = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        from bilevelbench.families.advctl.kkt import ScipKKT

        self.kkt = ScipKKT(spec.structure)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        x0, target = np.asarray(params["x0"], float), np.asarray(params["target"], float)
        out = np.stack([self.kkt.solve(x0[i], target[i], self.time_limit).U for i in range(len(x0))])
        return Prediction(y=out)
