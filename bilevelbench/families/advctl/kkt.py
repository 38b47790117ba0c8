"""Exact labels of ``adv-control``: the single-level KKT reformulation of the adversary, solved by SCIP.

The adversary's problem is a strictly convex QP with box bounds (:mod:`.problem`), so its KKT conditions are
necessary and sufficient and its answer is unique: replacing it by them gives an equivalent single-level
problem. Complementarity is written as SOS1 pairs (multiplier, slack), never with a big-M. Every variable has a
provably valid bound, because SCIP stalls on unbounded KKT models (``shared/FACTS.md``):

* ``|U| <= u_max`` and ``|W| <= w_max`` are the problem's own bounds; states are bounded by interval arithmetic
  over them;
* at most one of an entry's two multipliers is positive (the entry cannot sit on both bounds), and stationarity
  makes it equal ``|(M W - g(U))_i|``, so ``sum_j |M_ij| w_max + |(Gw' (1_T (x) a - Phi x0))_i| + sum_j |(Gw' Gu)_ij| u_max``
  bounds both;
* the epigraph of the leader's cost is capped by the cost of an achievable point (``U = 0`` with the adversary's
  answer), which the optimum cannot exceed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyscipopt

from bilevelbench.core.backends import backend_version
from bilevelbench.families.advctl.problem import AdvStructure, follower_linear, true_cost

# "gaplimit": SCIP stopped because its dual bound closed the relative gap asked for, which certifies the label
_STATUS = {"optimal": "optimal", "gaplimit": "optimal", "infeasible": "infeasible", "timelimit": "time_limit"}


@dataclass(frozen=True)
class KKTResult:
    status: str
    U: np.ndarray
    objective: float
    dual_bound: float
    time_s: float
    nodes: int
    detail: str


def multiplier_bounds(s: AdvStructure, x0: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A valid upper bound on each of the adversary's bound multipliers at any KKT point (module docstring)."""
    coupling = s.gw.T @ s.gu
    return (np.abs(s.follower_hessian).sum(1) * s.w_max + np.abs(follower_linear(s, x0, target, np.zeros(s.n_controls)))
            + np.abs(coupling).sum(1) * s.u_max)


def state_bounds(s: AdvStructure, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of the stacked states over every admissible ``U`` and ``W``."""
    free = s.phi @ x0
    reach = np.abs(s.gu).sum(1) * s.u_max + np.abs(s.gw).sum(1) * s.w_max
    return free - reach, free + reach


class ScipKKT:
    """The KKT-SOS1 model of one structure, re-solved from scratch for each initial state."""

    name = "scip"

    def __init__(self, s: AdvStructure, seed: int = 0, feasibility_tol: float = 1e-7, rel_gap: float = 1e-6,
                 abs_gap: float = 1e-9) -> None:
        self.s = s
        self.version = backend_version("scip")
        model = pyscipopt.Model("adv_control_kkt")
        model.hideOutput()
        model.setParam("numerics/feastol", feasibility_tol)
        model.setParam("randomization/randomseedshift", int(seed))
        model.setParam("limits/gap", rel_gap)
        model.setParam("limits/absgap", abs_gap)
        nc, nd, nX = s.n_controls, s.n_disturbances, s.gu.shape[0]
        qs = pyscipopt.quicksum
        self.U = [model.addVar(f"u{j}", lb=-s.u_max, ub=s.u_max) for j in range(nc)]
        self.W = [model.addVar(f"w{j}", lb=-s.w_max, ub=s.w_max) for j in range(nd)]
        self.X = [model.addVar(f"x{j}", lb=None, ub=None) for j in range(nX)]
        self.lp = [model.addVar(f"lam_up{j}", lb=0.0) for j in range(nd)]
        self.lm = [model.addVar(f"lam_lo{j}", lb=0.0) for j in range(nd)]
        sp = [model.addVar(f"slack_up{j}", lb=0.0, ub=2 * s.w_max) for j in range(nd)]
        sm = [model.addVar(f"slack_lo{j}", lb=0.0, ub=2 * s.w_max) for j in range(nd)]
        self.t = model.addVar("t", lb=0.0)
        U, W, X = self.U, self.W, self.X
        self.dynamics = []
        for i in range(nX):                          # X - Gu U - Gw W = Phi x0
            row = s.gu[i], s.gw[i]
            self.dynamics.append(model.addCons(
                X[i] - qs(float(row[0][j]) * U[j] for j in range(nc) if row[0][j] != 0)
                - qs(float(row[1][j]) * W[j] for j in range(nd) if row[1][j] != 0) == 0.0, name=f"dyn{i}"))
        M, C = s.follower_hessian, s.gw.T @ s.gu
        self.stationarity = []
        for i in range(nd):                          # M W + Gw'Gu U + lam_up - lam_lo = Gw' (a - Phi x0)
            self.stationarity.append(model.addCons(
                qs(float(M[i, j]) * W[j] for j in range(nd)) + qs(float(C[i, j]) * U[j] for j in range(nc)
                                                                  if C[i, j] != 0)
                + self.lp[i] - self.lm[i] == 0.0, name=f"stat{i}"))
            model.addCons(sp[i] + W[i] == s.w_max, name=f"up{i}")
            model.addCons(sm[i] - W[i] == s.w_max, name=f"lo{i}")
            model.addConsSOS1([self.lp[i], sp[i]], name=f"comp_up{i}")
            model.addConsSOS1([self.lm[i], sm[i]], name=f"comp_lo{i}")
        model.addCons(qs(x * x for x in X) + float(s.r) * qs(u * u for u in U) <= self.t, name="epigraph")
        model.setObjective(self.t, "minimize")
        self.model = model

    def solve(self, x0: np.ndarray, target: np.ndarray, time_limit: float) -> KKTResult:
        """Solve one instance; ``U`` is NaN when SCIP found no solution."""
        s, model = self.s, self.model
        x0, target = np.asarray(x0, float), np.asarray(target, float)
        start = time.perf_counter()
        model.freeTransform()
        free = s.phi @ x0
        for cons, value in zip(self.dynamics, free):
            model.chgLhs(cons, float(value))
            model.chgRhs(cons, float(value))
        rhs = follower_linear(s, x0, target, np.zeros(s.n_controls))
        for cons, value in zip(self.stationarity, rhs):
            model.chgLhs(cons, float(value))
            model.chgRhs(cons, float(value))
        lo, hi = state_bounds(s, x0)
        for var, a, b in zip(self.X, lo, hi):
            model.chgVarLb(var, float(a))
            model.chgVarUb(var, float(b))
        for var_p, var_m, b in zip(self.lp, self.lm, multiplier_bounds(s, x0, target)):
            model.chgVarUb(var_p, float(b))
            model.chgVarUb(var_m, float(b))
        cap = float(true_cost(s, x0, target, np.zeros(s.n_controls))[0][0])
        model.chgVarUb(self.t, cap * (1 + 1e-6) + 1e-6)  # valid: U = 0 is admissible and costs cap
        model.setParam("limits/time", float(time_limit))
        model.optimize()
        raw = model.getStatus()
        status = _STATUS.get(raw, "error")
        nodes, dual = int(model.getNNodes()), float(model.getDualbound())
        elapsed = time.perf_counter() - start
        if model.getNSols() == 0:
            return KKTResult(status, np.full(s.n_controls, np.nan), np.inf, dual, elapsed, nodes,
                             f"SCIP status {raw}")
        sol = model.getBestSol()
        U = np.array([model.getSolVal(sol, v) for v in self.U])
        return KKTResult(status, U, float(model.getSolObjVal(sol)), dual, elapsed, nodes, f"SCIP status {raw}")
