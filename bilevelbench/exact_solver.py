"""The exact solver as a submission: the certifier (incumbent, provable bounds, SOS1 KKT-MIP) behind the contract.

It gives every leaderboard its gap-0 row and the latency learned methods are
compared with (``speedup_vs_exact``). ``baselines/exact/solver.py`` exposes it
in the same shape as a user's submission.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bilevelbench.certify.backends import backend_version
from bilevelbench.certify.certifier import Certifier, CertifierSettings
from bilevelbench.certify.label import SOLUTION_STATUSES
from bilevelbench.solvers import Prediction, Solver, TaskSpec


class ExactSolver(Solver):
    """KKT reformulation with SOS1 complementarity solved to optimality by SCIP (open source).

    Instances the certifier cannot solve (time limit, numerical failure) get NaN
    rows, which the evaluator records as failures.
    """

    name = "exact"
    description = "KKT reformulation, SOS1 complementarity, provably valid bounds; SCIP branch-and-bound"
    backend = "scip"
    time_limit = 120.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version(self.backend)})"
        self._certifier: Certifier | None = None

    def skip(self, spec: TaskSpec) -> tuple[bool, str | None]:
        if spec.family != "bqp":
            return True, f"the exact BQP solver does not handle family {spec.family!r}"
        return False, None

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
