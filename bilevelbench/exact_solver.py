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
    """The families' exact solvers behind the contract.

    ``bqp``: KKT reformulation with SOS1 complementarity solved to optimality by SCIP.
    ``mimpc-*``: the MIQP itself, by the label certifier's backend (SCIP, or Gurobi where
    installed and its license takes the model), with the same checks as the labels.
    ``dcopf``: the label model (HiGHS, built once in ``setup``, warm-started per instance), certified by its
    duals as the labels are.
    ``ccd-*``: the best-known search of the labels (:mod:`bilevelbench.certify.best_known`; not a certificate).
    Instances the solver cannot finish (time limit, numerical failure, infeasible)
    get NaN rows, which the evaluator records as failures.
    """

    name = "exact"
    description = ("bqp: SOS1 KKT-MIP with provably valid bounds (SCIP); mimpc: the MIQP to gap 1e-6 "
                   "(SCIP or Gurobi), integers fixed and re-solved by HiGHS; dcopf: HiGHS on the angle "
                   "formulation, certified by its duals")
    backend = "scip"
    time_limit = 120.0

    def __init__(self) -> None:
        import bilevelbench

        self.version = f"{bilevelbench.__version__} ({backend_version(self.backend)})"
        self._certifier: Certifier | None = None
        self._miqp = None
        self._dcopf = None
        self._ccd = None

    def skip(self, spec: TaskSpec) -> tuple[bool, str | None]:
        if spec.family not in ("bqp", "mimpc-robot", "mimpc-tank", "dcopf", "ccd-twotank", "ccd-hvac"):
            return True, f"the exact solver does not handle family {spec.family!r}"
        return False, None

    def setup(self, spec: TaskSpec, train_set) -> None:
        if spec.family.startswith("ccd-"):
            import bilevelbench

            self._ccd = (spec.family, spec.structure)
            self.version = f"{bilevelbench.__version__} (best-known search)"
            return
        if spec.family == "dcopf":
            from bilevelbench.certify.dcopf import DCOPFCertifierSettings, DCOPFModel

            settings = DCOPFCertifierSettings(time_limit=self.time_limit)
            self._dcopf = (DCOPFModel(spec.structure, settings.time_limit), settings)
            import bilevelbench

            self.version = f"{bilevelbench.__version__} ({backend_version('highs')})"
            return
        if spec.family != "bqp":
            from bilevelbench.certify.miqp import MIQPCertifierSettings, choose_backend

            settings = MIQPCertifierSettings(time_limit=self.time_limit)
            backend = choose_backend(spec.structure, settings.backend)
            self._miqp = (spec.structure, settings, backend)
            import bilevelbench

            self.version = f"{bilevelbench.__version__} ({backend_version(backend)})"
            return
        self._certifier = Certifier(spec.structure, CertifierSettings(backend=self.backend,
                                                                      time_limit=self.time_limit))

    def _solve_miqp(self, theta: np.ndarray) -> Prediction:
        from bilevelbench.certify.miqp import certify_miqp

        s, settings, backend = self._miqp
        theta = np.atleast_2d(theta)
        x = np.full((theta.shape[0], s.n), np.nan)
        for k in range(theta.shape[0]):
            label = certify_miqp(s, theta[k], settings, backend)
            if label.status in SOLUTION_STATUSES:
                x[k] = label.x
        return Prediction(y=x)

    def _solve_dcopf(self, pd: np.ndarray) -> Prediction:
        from bilevelbench.certify.dcopf import certify_dcopf

        model, settings = self._dcopf
        pd = np.atleast_2d(pd)
        pg = np.full((pd.shape[0], model.s.n_gen), np.nan)
        for k in range(pd.shape[0]):
            label = certify_dcopf(model, pd[k], settings)
            if label.status in SOLUTION_STATUSES:
                pg[k] = label.pg
        return Prediction(y=pg)

    def solve(self, params: Mapping[str, np.ndarray]) -> Prediction:
        if self._ccd is not None:
            from bilevelbench.certify.best_known import search

            family, s = self._ccd
            rows = {k: np.asarray(v) for k, v in params.items()}
            return Prediction(y=search(family, s, rows)["design"])
        if self._dcopf is not None:
            return self._solve_dcopf(params["pd"])
        if self._miqp is not None:
            return self._solve_miqp(params["theta"])
        cert = self._certifier
        c, d = np.atleast_2d(params["c"]), np.atleast_2d(params["d"])
        y = np.full((c.shape[0], cert.s.m), np.nan)
        z = np.full((c.shape[0], cert.s.n), np.nan)
        for k in range(c.shape[0]):
            label = cert.certify(c[k], d[k])
            if label.status in SOLUTION_STATUSES:
                y[k], z[k] = label.y, label.z
        return Prediction(y=y, z=z)
