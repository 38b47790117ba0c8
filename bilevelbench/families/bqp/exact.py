"""The bqp exact reference solver: the label certifier (incumbent, provable bounds, SOS1 KKT-MIP) behind the
submission contract; gap 0 by construction (up to solver tolerances)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.families.bqp.certifier import Certifier, CertifierSettings
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactBQPSolver(Solver):
    """SOS1 KKT-MIP with provably valid bounds, solved to optimality by SCIP."""

    name = "exact"
    description = "bqp: SOS1 KKT-MIP with provably valid bounds (SCIP)"
    backend = "scip"
    time_limit = 120.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version(self.backend)})"
        self._certifier: Certifier | None = None

    def setup(self, spec: TaskSpec, train_set) -> None:
        self._certifier = Certifier(spec.structure, CertifierSettings(backend=self.backend,
                                                                      time_limit=self.time_limit))

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        cert = self._certifier
        c, d = np.atleast_2d(params["c"]), np.atleast_2d(params["d"])
        y = np.full((c.shape[0], cert.s.m), np.nan)
        z = np.full((c.shape[0], cert.s.n), np.nan)
        for k in range(c.shape[0]):
            label = cert.certify(c[k], d[k])
            if label.status in SOLUTION_STATUSES:
                y[k], z[k] = label.y, label.z
        return Prediction(y=y, z=z)
