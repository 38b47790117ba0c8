"""The KKT-MIP in Gurobi (gurobipy), used when installed and the license takes the model."""

from __future__ import annotations

import numpy as np

from bilevelbench.core.backends import backend_version
from bilevelbench.errors import BackendUnavailableError
from bilevelbench.families.bqp.backends import BackendSettings, MIPResult
from bilevelbench.families.bqp.bounds import VariableBounds
from bilevelbench.families.bqp.problem import BQPStructure


class GurobiKKT:
    """Gurobi model of the KKT reformulation (quadratic objective, SOS1 pairs), built once."""

    name = "gurobi"

    def __init__(self, s: BQPStructure, settings: BackendSettings) -> None:
        import gurobipy as gp
        from gurobipy import GRB

        self._gp, self._grb = gp, GRB
        self.s = s
        self.version = backend_version("gurobi")
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        model = gp.Model("bqp_kkt", env=env)
        model.Params.Threads = settings.threads
        model.Params.Seed = settings.seed
        model.Params.MIPGap = 0.0
        model.Params.MIPGapAbs = 0.0
        model.Params.FeasibilityTol = max(settings.feasibility_tol, 1e-9)
        m, n, p = s.m, s.n, s.n_lower_constraints
        y = model.addMVar(m, lb=-GRB.INFINITY, name="y")
        z = model.addMVar(n, lb=-GRB.INFINITY, name="z")
        lam = model.addMVar(p, lb=0.0, name="lam")
        sl = model.addMVar(p, lb=0.0, name="s")
        self.upper = model.addConstr(s.A @ y - s.E @ z <= s.b, name="upper")
        model.addConstr(s.F @ z + sl - s.G @ y == s.h, name="lower")
        model.addConstr(s.H @ z + s.F.T @ lam == -s.e, name="stationarity")
        for i in range(p):
            model.addSOS(GRB.SOS_TYPE1, [lam[i].item(), sl[i].item()])
        self.quad = 0.5 * (y @ s.Q @ y)
        self.y, self.z, self.lam, self.slack = y, z, lam, sl
        self.model = model
        self._env = env

    def solve(self, c: np.ndarray, d: np.ndarray, bounds: VariableBounds, time_limit: float,
              upper_rhs: np.ndarray | None = None) -> MIPResult:
        GRB, model, s = self._grb, self.model, self.s
        model.reset(1)  # forget previous solutions: each label is solved from scratch
        self.upper.RHS = s.b if upper_rhs is None else upper_rhs
        self.y.lb, self.y.ub = bounds.y_lo, bounds.y_hi
        self.z.lb, self.z.ub = bounds.z_lo, bounds.z_hi
        self.lam.ub = bounds.lam_hi
        self.slack.ub = bounds.slack_hi
        model.setObjective(self.quad + np.asarray(c) @ self.y + np.asarray(d) @ self.z + s.q, GRB.MINIMIZE)
        model.Params.TimeLimit = float(time_limit)
        model.Params.Cutoff = float(bounds.objective_cap) if np.isfinite(bounds.objective_cap) else GRB.INFINITY
        try:
            model.optimize()
        except self._gp.GurobiError as exc:
            if exc.errno == GRB.Error.SIZE_LIMIT_EXCEEDED:
                raise BackendUnavailableError(f"Gurobi refused the model: {exc}") from exc
            raise
        code = model.Status
        status = {GRB.OPTIMAL: "optimal", GRB.INFEASIBLE: "infeasible", GRB.TIME_LIMIT: "time_limit"}.get(
            code, "error")
        nodes, elapsed = int(model.NodeCount), float(model.Runtime)
        dual = float(model.ObjBound) if model.SolCount or status == "optimal" else -np.inf
        if model.SolCount == 0:
            nan = np.full
            return MIPResult(status, nan(s.m, np.nan), nan(s.n, np.nan), nan(s.n_lower_constraints, np.nan),
                             np.inf, dual, elapsed, nodes, f"Gurobi status {code}")
        return MIPResult(status, np.array(self.y.X), np.array(self.z.X), np.array(self.lam.X),
                         float(model.ObjVal), dual, elapsed, nodes, f"Gurobi status {code}")
