"""Certified knapsack labels: SCIP at zero gap, then checks that trust nothing SCIP says about the point.

SCIP (pyscipopt's bundled SCIP) solves ``max v . y`` s.t. ``W y <= floor(c)``, ``y`` binary (the floor is exact
for integer weights, :func:`bilevelbench.families.knapsack.problem.integer_capacity`), with relative and absolute
gap limits 0, one thread, its default random seed and a time limit, in a fresh model per instance (so a label
depends on its instance alone). A label is ``certified_optimal`` only when SCIP reports ``optimal`` *and* the
point passes :func:`check_point`: its entries are within 1e-6 of 0/1 (they are then rounded to exact 0/1), the
rounded point meets ``W y <= c`` exactly, and ``v . y`` agrees with SCIP's objective. When SCIP stops early with a
point that passes the checks, the label is ``best_known`` (the reason gives SCIP's status and dual bound);
without such a point it is ``failed`` and stores no point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bilevelbench.families.knapsack.problem import BINARY_TOL, KnapsackStructure, integer_capacity

#: Agreement required between ``v . y`` of the rounded point and SCIP's objective (relative to ``max(1, |f|)``).
AGREEMENT_TOL = 1e-9


@dataclass(frozen=True)
class KnapsackCertifierSettings:
    """The settings a label depends on (recorded in the file as ``certifier_settings``)."""

    time_limit: float = 60.0

    def as_dict(self) -> dict:
        return {"backend": "scip", "time_limit": float(self.time_limit), "gap": 0.0, "absgap": 0.0, "threads": 1,
                "binary_tol": BINARY_TOL, "agreement_tol": AGREEMENT_TOL,
                "capacity": "floor(c): exact for integer weights"}


@dataclass
class KnapsackLabel:
    """One instance's outcome: ``y`` is None unless the status stores a solution."""

    status: str
    reason: str
    y: np.ndarray | None
    objective: float
    dual_bound: float
    solve_time: float


def check_point(s: KnapsackStructure, raw: np.ndarray, capacity: np.ndarray, solver_objective: float
                ) -> tuple[np.ndarray | None, str]:
    """Round a solver's point and check it; returns ``(y, "")`` or ``(None, what is wrong)``."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.round(raw)
    off = float(np.max(np.abs(raw - y), initial=0.0))
    if not np.all(np.isfinite(raw)) or off > BINARY_TOL or np.any((y != 0) & (y != 1)):
        return None, f"the solver's point is not binary (off by {off:.1e})"
    load = s.weight @ y.astype(np.int64)
    if np.any(load > np.asarray(capacity)):
        worst = int(np.argmax(load - capacity))
        return None, f"the rounded point exceeds capacity {worst}: {load[worst]} > {capacity[worst]:.10g}"
    f = float(s.value @ y)
    if abs(f - solver_objective) > AGREEMENT_TOL * max(1.0, abs(f)):
        return None, f"v . y = {f:.12g} differs from the solver's objective {solver_objective:.12g}"
    return y, ""


def solve_scip(s: KnapsackStructure, capacity: np.ndarray, time_limit: float) -> KnapsackLabel:
    """Solve one instance with SCIP and certify the outcome (see the module docstring).

    Parameters
    ----------
    s : KnapsackStructure
    capacity : (m,) array
        The instance's capacities (finite).
    time_limit : float
        Seconds SCIP may spend.
    """
    import pyscipopt

    capacity = np.asarray(capacity, dtype=np.float64).reshape(-1)
    rhs = integer_capacity(capacity)
    model = pyscipopt.Model("knapsack")
    model.hideOutput()
    model.setParam("limits/time", float(time_limit))
    model.setParam("limits/gap", 0.0)
    model.setParam("limits/absgap", 0.0)
    model.setParam("lp/threads", 1)
    model.setParam("parallel/maxnthreads", 1)
    y = [model.addVar(vtype="B", name=f"y{j}") for j in range(s.n_items)]
    for i in range(s.n_constraints):
        model.addCons(pyscipopt.quicksum(int(s.weight[i, j]) * y[j] for j in range(s.n_items)) <= int(rhs[i]))
    model.setObjective(pyscipopt.quicksum(float(s.value[j]) * y[j] for j in range(s.n_items)), "maximize")
    start = time.perf_counter()
    model.optimize()
    elapsed = time.perf_counter() - start
    status = model.getStatus()
    dual = float(model.getDualbound())
    if model.getNSols() == 0:
        return KnapsackLabel("failed", f"SCIP ended with status {status!r} and no point", None, np.nan, dual, elapsed)
    best = model.getBestSol()
    point, problem = check_point(s, np.array([model.getSolVal(best, v) for v in y]), capacity,
                                 float(model.getSolObjVal(best)))
    if point is None:
        return KnapsackLabel("failed", f"SCIP ({status}): {problem}", None, np.nan, dual, elapsed)
    f = float(s.value @ point)
    if status == "optimal":
        return KnapsackLabel("certified_optimal", "SCIP optimal at gap 0; point binary, within capacity, v . y "
                             "agrees", point, f, dual, elapsed)
    return KnapsackLabel("best_known", f"SCIP stopped with status {status!r}, dual bound {dual:.10g}: not a "
                         "certificate", point, f, dual, elapsed)
