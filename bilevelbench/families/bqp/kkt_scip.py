"""The KKT-MIP in SCIP (pyscipopt, bundled with the wheel): the open-source default."""

from __future__ import annotations

import numpy as np
import pyscipopt

from bilevelbench.core.backends import backend_version
from bilevelbench.families.bqp.backends import BackendSettings, MIPResult
from bilevelbench.families.bqp.bounds import VariableBounds
from bilevelbench.families.bqp.problem import BQPStructure

_STATUS = {"optimal": "optimal", "infeasible": "infeasible", "timelimit": "time_limit"}


class ScipKKT:
    """SCIP model of the KKT reformulation, built once per structure.

    Each :meth:`solve` frees the transformed problem, sets the instance's
    objective and bounds, and solves from scratch, so a result never depends on
    which instances were solved before it.
    """

    name = "scip"

    def __init__(self, s: BQPStructure, settings: BackendSettings) -> None:
        self.s = s
        self.version = backend_version("scip")
        model = pyscipopt.Model("bqp_kkt")
        model.hideOutput()
        model.setParam("numerics/feastol", settings.feasibility_tol)
        model.setParam("randomization/randomseedshift", settings.seed)
        model.setParam("parallel/maxnthreads", settings.threads)
        model.setParam("limits/gap", 0.0)
        model.setParam("limits/absgap", 0.0)
        # Primal heuristics off: the certifier hands in its own incumbent bound, and SCIP's
        # NLP-based heuristics cost 5-7x the whole solve on these models (measured at 3x2-20x15).
        model.setHeuristics(pyscipopt.SCIP_PARAMSETTING.OFF)
        m, n, p = s.m, s.n, s.n_lower_constraints
        self.y = [model.addVar(f"y{j}", lb=None, ub=None) for j in range(m)]
        self.z = [model.addVar(f"z{j}", lb=None, ub=None) for j in range(n)]
        self.lam = [model.addVar(f"lam{i}", lb=0.0, ub=None) for i in range(p)]
        self.slack = [model.addVar(f"s{i}", lb=0.0, ub=None) for i in range(p)]
        self.t = model.addVar("t", lb=0.0, ub=None)
        y, z, lam, sl = self.y, self.z, self.lam, self.slack
        qs = pyscipopt.quicksum
        self.upper = []
        for i in range(s.n_upper_constraints):
            self.upper.append(model.addCons(qs(s.A[i, j] * y[j] for j in range(m)) - qs(s.E[i, j] * z[j] for j in range(n))
                          <= s.b[i], name=f"upper{i}"))
        for i in range(p):
            model.addCons(qs(s.F[i, j] * z[j] for j in range(n)) + sl[i]
                          - qs(s.G[i, j] * y[j] for j in range(m)) == s.h[i], name=f"lower{i}")
        for j in range(n):
            model.addCons(qs(s.H[j, k] * z[k] for k in range(n)) + qs(s.F[i, j] * lam[i] for i in range(p))
                          == -s.e[j], name=f"stationarity{j}")
        for i in range(p):
            model.addConsSOS1([lam[i], sl[i]], name=f"complementarity{i}")
        model.addCons(0.5 * qs(s.Q[j, k] * y[j] * y[k] for j in range(m) for k in range(m)) <= self.t,
                      name="epigraph")
        self.model = model

    def solve(self, c: np.ndarray, d: np.ndarray, bounds: VariableBounds, time_limit: float,
              upper_rhs: np.ndarray | None = None) -> MIPResult:
        model, s = self.model, self.s
        model.freeTransform()
        rhs = s.b if upper_rhs is None else upper_rhs
        for cons, value in zip(self.upper, rhs):
            model.chgRhs(cons, float(value))
        for var, lo, hi in zip(self.y, bounds.y_lo, bounds.y_hi):
            model.chgVarLb(var, float(lo))
            model.chgVarUb(var, float(hi))
        for var, lo, hi in zip(self.z, bounds.z_lo, bounds.z_hi):
            model.chgVarLb(var, float(lo))
            model.chgVarUb(var, float(hi))
        for var, hi in zip(self.lam, bounds.lam_hi):
            model.chgVarUb(var, float(hi))
        for var, hi in zip(self.slack, bounds.slack_hi):
            model.chgVarUb(var, float(hi))
        model.chgVarUb(self.t, float(bounds.epigraph_hi))
        objective = (self.t + pyscipopt.quicksum(float(c[j]) * self.y[j] for j in range(s.m))
                     + pyscipopt.quicksum(float(d[j]) * self.z[j] for j in range(s.n)))
        model.setObjective(objective, "minimize")
        if np.isfinite(bounds.objective_cap):
            model.setObjlimit(float(bounds.objective_cap) - s.q)  # valid: an achievable objective
        model.setParam("limits/time", float(time_limit))
        model.optimize()
        raw = model.getStatus()
        status = _STATUS.get(raw, "error")
        nodes = int(model.getNNodes())
        elapsed = float(model.getSolvingTime())
        dual = float(model.getDualbound()) + s.q
        nan = np.full
        if model.getNSols() == 0:
            return MIPResult(status, nan(s.m, np.nan), nan(s.n, np.nan), nan(s.n_lower_constraints, np.nan),
                             np.inf, dual, elapsed, nodes, f"SCIP status {raw}")
        sol = model.getBestSol()
        vals = lambda vs: np.array([model.getSolVal(sol, v) for v in vs])
        return MIPResult(status, vals(self.y), vals(self.z), vals(self.lam),
                         float(model.getSolObjVal(sol)) + s.q, dual, elapsed, nodes, f"SCIP status {raw}")
