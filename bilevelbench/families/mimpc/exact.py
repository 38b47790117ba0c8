"""The mixed-integer MPC exact reference solver: the MIQP itself, by the label certifier's backend (SCIP, or
Gurobi where installed and its license takes the model), with the same checks as the labels."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactMIQPSolver(Solver):
    """The MIQP to gap 1e-6 (SCIP or Gurobi), integers fixed and the continuous part re-solved by HiGHS."""

    name = "exact"
    description = "mimpc: the MIQP to gap 1e-6 (SCIP or Gurobi), integers fixed and re-solved by HiGHS"
    time_limit = 120.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = bilevelbench.__version__
        self._state = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        import bilevelbench
        from bilevelbench.families.mimpc.certify import MIQPCertifierSettings, choose_backend

        settings = MIQPCertifierSettings(time_limit=self.time_limit)
        backend = choose_backend(spec.structure, settings.backend)
        self._state = (spec.structure, settings, backend)
        self.version = f"{bilevelbench.__version__} ({backend_version(backend)})"

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        from bilevelbench.families.mimpc.certify import certify_miqp

        s, settings, backend = self._state
        theta = np.atleast_2d(params["theta"])
        x = np.full((theta.shape[0], s.n), np.nan)
        for k in range(theta.shape[0]):
            label = certify_miqp(s, theta[k], settings, backend)
            if label.status in SOLUTION_STATUSES:
                x[k] = label.x
        return Prediction(y=x)
