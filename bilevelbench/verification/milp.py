"""A solver-neutral MILP (columns, rows, SOS1 pairs, a linear objective to maximise) and its three backends:
SCIP (pyscipopt, the default), HiGHS (highspy) and Gurobi (gurobipy, where the model fits its license).

The verifier builds one :class:`MILP` and hands it to :func:`solve`; every backend receives the same model,
the same time limit and the same warm start, and reports a :class:`MILPResult` with both bounds, so a time
limit is a result (``status = "time_limit"``), not an error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import BackendUnavailableError, SolverError, UsageError

log = logging.getLogger(__name__)

#: Backends in order of preference.
BACKENDS = ("scip", "highs", "gurobi")


def quiet_highs():
    """A HiGHS instance with no banner, no log and one thread.

    HiGHS's thread scheduler is global: the first run fixes its size, and a later instance that asks for another
    count fails to run (status "Not Set"), so every model the verifier builds uses one thread.
    """
    import highspy

    from bilevelbench.qp import _stdout_silenced

    with _stdout_silenced():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


def highs_model(A, cost, col_lower, col_upper, row_lower, row_upper, offset: float = 0.0, integer=None):
    """A ``highspy.HighsLp`` (minimise ``cost . v + offset``) from a sparse matrix and bounds in which infinite
    values mean "no bound"; ``integer`` marks integer columns."""
    import highspy

    inf = highspy.kHighsInf
    A = sp.csc_matrix(A)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_ = np.asarray(cost, float)
    lp.offset_ = float(offset)
    for name, values, fill in (("col_lower_", col_lower, -inf), ("col_upper_", col_upper, inf),
                               ("row_lower_", row_lower, -inf), ("row_upper_", row_upper, inf)):
        values = np.asarray(values, float)
        setattr(lp, name, np.where(np.isfinite(values), values, fill))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
    if integer is not None:
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in integer]
    return lp


class MILP:
    """Maximise ``objective . v + constant`` over columns ``v`` with bounds, integrality, rows and SOS1 pairs."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.names: list[str] = []
        self.rows: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        self.sos1: list[tuple[int, int]] = []
        self.objective: dict[int, float] = {}
        self.constant = 0.0

    # -- building ---------------------------------------------------------------------------------------------
    def add_vars(self, n: int, lower, upper, integer: bool = False, name: str = "v") -> np.ndarray:
        """``n`` columns with bounds (scalars or arrays); returns their indices."""
        lo = np.broadcast_to(np.asarray(lower, np.float64), (n,))
        hi = np.broadcast_to(np.asarray(upper, np.float64), (n,))
        if np.any(lo > hi + 1e-9):
            bad = int(np.argmax(lo > hi + 1e-9))
            raise SolverError(f"MILP column {name}[{bad}] has lower bound {lo[bad]} above upper bound {hi[bad]}")
        start = len(self.lower)
        self.lower += list(np.minimum(lo, hi))
        self.upper += list(hi)
        self.integer += [bool(integer)] * n
        self.names += [f"{name}[{i}]" for i in range(n)]
        return np.arange(start, start + n)

    def add_row(self, index, coef, lower: float = -np.inf, upper: float = np.inf) -> None:
        """``lower <= sum coef_i v_index_i <= upper`` (duplicate indices are summed)."""
        index = np.asarray(index, np.int64).reshape(-1)
        coef = np.asarray(coef, np.float64).reshape(-1)
        keep = coef != 0
        self.rows.append((index[keep], coef[keep], float(lower), float(upper)))

    def add_sos1(self, a: int, b: int) -> None:
        """At most one of ``v_a``, ``v_b`` is non-zero."""
        self.sos1.append((int(a), int(b)))

    def add_objective(self, index, coef) -> None:
        for i, c in zip(np.asarray(index).reshape(-1), np.asarray(coef, np.float64).reshape(-1), strict=True):
            self.objective[int(i)] = self.objective.get(int(i), 0.0) + float(c)

    # -- views ------------------------------------------------------------------------------------------------
    @property
    def n_vars(self) -> int:
        return len(self.lower)

    @property
    def n_binaries(self) -> int:
        """Integer columns plus SOS1 pairs (each is one binary decision)."""
        return int(sum(self.integer)) + len(self.sos1)

    def matrix(self) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Rows as a CSR matrix with their bounds."""
        if not self.rows:
            return sp.csr_matrix((0, self.n_vars)), np.zeros(0), np.zeros(0)
        data = np.concatenate([r[1] for r in self.rows])
        cols = np.concatenate([r[0] for r in self.rows])
        counts = np.array([r[0].size for r in self.rows])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        A = sp.csr_matrix((data, cols, indptr), shape=(len(self.rows), self.n_vars))
        A.sum_duplicates()
        return A, np.array([r[2] for r in self.rows]), np.array([r[3] for r in self.rows])

    def cost(self) -> np.ndarray:
        c = np.zeros(self.n_vars)
        for i, v in self.objective.items():
            c[i] += v
        return c

    def value(self, v: np.ndarray) -> float:
        return float(self.cost() @ v + self.constant)

    def violation(self, v: np.ndarray) -> float:
        """Largest violation of bounds, rows, integrality and SOS1 by the assignment ``v``."""
        v = np.asarray(v, np.float64)
        A, lo, hi = self.matrix()
        ax = A @ v
        worst = max(0.0, float(np.max(np.concatenate([[0.0], lo - ax, ax - hi]))))
        worst = max(worst, float(np.max(np.concatenate([[0.0], np.array(self.lower) - v, v - np.array(self.upper)]))))
        ints = np.array(self.integer, bool)
        if ints.any():
            worst = max(worst, float(np.max(np.abs(v[ints] - np.round(v[ints])))))
        for a, b in self.sos1:
            worst = max(worst, min(abs(v[a]), abs(v[b])))
        return worst


@dataclass
class MILPResult:
    """One backend's answer: ``lower_bound`` (best solution found) <= optimum <= ``upper_bound``."""

    backend: str
    status: str
    lower_bound: float
    upper_bound: float
    solution: np.ndarray | None
    time_s: float
    nodes: int = 0
    #: ``[seconds, incumbent, dual bound]`` each time a bound moved (SCIP only; maximisation: dual >= incumbent).
    history: list = field(default_factory=list)


def lp_bound(milp: MILP) -> float:
    """The LP relaxation's optimum (integrality and SOS1 dropped): a valid upper bound on the MILP's optimum that
    needs no branching (what a time limit hit before the root node still proves)."""
    import highspy

    h = quiet_highs()
    A, lo, hi = milp.matrix()
    h.passModel(highs_model(A, -milp.cost(), milp.lower, milp.upper, lo, hi, -milp.constant))
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kOptimal:
        return -float(h.getInfo().objective_function_value)
    if status == highspy.HighsModelStatus.kInfeasible:
        return float("-inf")
    return float("inf")


def solve(milp: MILP, backend: str = "scip", time_limit: float = 600.0, warm_start: np.ndarray | None = None,
          threads: int = 1) -> MILPResult:
    """Solve ``milp`` with ``backend`` (see :data:`BACKENDS`) within ``time_limit`` seconds.

    Raises
    ------
    UsageError
        On an unknown backend or a non-positive time limit.
    BackendUnavailableError
        When the backend is not installed, or the model does not fit Gurobi's license.
    """
    if backend not in BACKENDS:
        raise UsageError(f"MILP backend must be one of {', '.join(BACKENDS)}; received {backend!r}")
    if not (np.isfinite(time_limit) and time_limit > 0):
        raise UsageError(f"time limit must be a positive number of seconds, received {time_limit}")
    fn = {"scip": _solve_scip, "highs": _solve_highs, "gurobi": _solve_gurobi}[backend]
    return fn(milp, float(time_limit), warm_start, int(threads))


def _finite(x: float) -> float:
    return float(x) if np.isfinite(x) else float("inf") if x > 0 else float("-inf")


def _bound_trace(history: list):
    """A SCIP event handler appending to ``history`` (defined here: pyscipopt is imported only when SCIP runs)."""
    import pyscipopt

    class BoundTrace(pyscipopt.Eventhdlr):
        """Appends ``[seconds, incumbent, dual bound]`` whenever a node is solved and either bound moved."""

        def __init__(self, history: list) -> None:
            self.history = history
            self.start = time.perf_counter()

        def eventinit(self):
            self.model.catchEvent(pyscipopt.SCIP_EVENTTYPE.NODESOLVED, self)
            self.model.catchEvent(pyscipopt.SCIP_EVENTTYPE.BESTSOLFOUND, self)

        def eventexit(self):
            self.model.dropEvent(pyscipopt.SCIP_EVENTTYPE.NODESOLVED, self)
            self.model.dropEvent(pyscipopt.SCIP_EVENTTYPE.BESTSOLFOUND, self)

        def eventexec(self, event):
            primal = float(self.model.getPrimalbound())
            dual = float(self.model.getDualbound())
            if not self.history or self.history[-1][1:] != [primal, dual]:
                self.history.append([round(time.perf_counter() - self.start, 3), primal, dual])
            return {}

    return BoundTrace(history)


def _solve_scip(milp: MILP, time_limit: float, warm: np.ndarray | None, threads: int) -> MILPResult:
    try:
        import pyscipopt
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise BackendUnavailableError(f"SCIP backend needs pyscipopt: {exc}") from None
    m = pyscipopt.Model()
    m.hideOutput()
    m.setParam("limits/time", time_limit)
    m.setParam("limits/gap", 0.0)
    m.setParam("limits/absgap", 0.0)
    m.setParam("randomization/randomseedshift", 0)
    inf = m.infinity()
    xs = []
    for lo, hi, integer, name in zip(milp.lower, milp.upper, milp.integer, milp.names, strict=True):
        lo_s = lo if np.isfinite(lo) else -inf
        hi_s = hi if np.isfinite(hi) else inf
        vtype = "C"
        if integer:
            vtype = "B" if lo >= 0 and hi <= 1 else "I"
        xs.append(m.addVar(name=name, vtype=vtype, lb=lo_s, ub=hi_s))
    for index, coef, lo, hi in milp.rows:
        expr = pyscipopt.quicksum(float(c) * xs[int(i)] for i, c in zip(index, coef, strict=True))
        if np.isfinite(lo) and np.isfinite(hi):
            m.addCons((lo <= expr) <= hi)
        elif np.isfinite(lo):
            m.addCons(expr >= lo)
        elif np.isfinite(hi):
            m.addCons(expr <= hi)
    for a, b in milp.sos1:
        m.addConsSOS1([xs[a], xs[b]])
    m.setObjective(pyscipopt.quicksum(c * xs[i] for i, c in milp.objective.items()) + milp.constant, "maximize")
    if warm is not None:
        sol = m.createSol()
        for i, v in enumerate(warm):
            m.setSolVal(sol, xs[i], float(v))
        accepted = m.addSol(sol, free=True)
        log.info("SCIP %s the warm start", "accepted" if accepted else "rejected")
    history: list = []
    m.includeEventhdlr(_bound_trace(history), "bound_trace", "records (time, incumbent, dual bound) as they move")
    start = time.perf_counter()
    m.optimize()
    elapsed = time.perf_counter() - start
    status = m.getStatus()
    n_sols = m.getNSols()
    solution = None
    lower = float("-inf")
    if n_sols > 0:
        best = m.getBestSol()
        solution = np.array([m.getSolVal(best, x) for x in xs])
        lower = float(m.getSolObjVal(best))
    upper = _finite(m.getDualbound())
    mapped = {"optimal": "optimal", "timelimit": "time_limit", "infeasible": "infeasible"}.get(status, status)
    if mapped == "optimal":
        upper = max(upper, lower)
    if not history or history[-1][1:] != [lower, upper]:       # solved in presolve: no node event fired
        history.append([round(elapsed, 3), lower, upper])
    return MILPResult("scip", mapped, lower, upper, solution, elapsed, int(m.getNNodes()), history)


def _solve_highs(milp: MILP, time_limit: float, warm: np.ndarray | None, threads: int) -> MILPResult:
    import highspy

    if milp.sos1:
        raise BackendUnavailableError("HiGHS has no SOS1 constraints; build the model with --encoding bigm")
    h = quiet_highs()
    if threads != 1:
        log.info("HiGHS runs its MILP with one thread here (its scheduler is process-wide and fixed at one)")
    h.setOptionValue("time_limit", time_limit)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.0)
    h.setOptionValue("random_seed", 0)
    A, lo, hi = milp.matrix()
    # HiGHS minimises: the negated objective
    h.passModel(highs_model(A, -milp.cost(), milp.lower, milp.upper, lo, hi, -milp.constant, milp.integer))
    if warm is not None:
        sol = highspy.HighsSolution()
        sol.col_value = list(map(float, warm))
        sol.value_valid = True
        h.setSolution(sol)
    start = time.perf_counter()
    h.run()
    elapsed = time.perf_counter() - start
    status = h.getModelStatus()
    info = h.getInfo()
    mapped = {highspy.HighsModelStatus.kOptimal: "optimal", highspy.HighsModelStatus.kTimeLimit: "time_limit",
              highspy.HighsModelStatus.kInfeasible: "infeasible"}.get(status, h.modelStatusToString(status))
    solution = None
    lower = float("-inf")
    if info.primal_solution_status >= 1 and mapped != "infeasible":
        solution = np.asarray(h.getSolution().col_value, float)
        lower = -float(info.objective_function_value)
    upper = _finite(-float(info.mip_dual_bound))
    if mapped == "optimal":
        upper = max(upper, lower)
    return MILPResult("highs", mapped, lower, upper, solution, elapsed, int(info.mip_node_count))


def _solve_gurobi(milp: MILP, time_limit: float, warm: np.ndarray | None, threads: int) -> MILPResult:
    from bilevelbench.core.backends import GUROBI_FREE_ROWS, gurobi_status

    ok, why = gurobi_status()
    if not ok:
        raise BackendUnavailableError(f"Gurobi is not usable here: {why}")
    import gurobipy as gp

    n_cons = len(milp.rows) + len(milp.sos1)
    try:
        env = gp.Env(params={"OutputFlag": 0})
        m = gp.Model(env=env)
        m.Params.TimeLimit = time_limit
        m.Params.MIPGap = 0.0
        m.Params.MIPGapAbs = 0.0
        m.Params.Threads = threads
        m.Params.Seed = 0
        vtypes = [gp.GRB.INTEGER if i else gp.GRB.CONTINUOUS for i in milp.integer]
        lo = [v if np.isfinite(v) else -gp.GRB.INFINITY for v in milp.lower]
        hi = [v if np.isfinite(v) else gp.GRB.INFINITY for v in milp.upper]
        x = m.addMVar(milp.n_vars, lb=lo, ub=hi, vtype=vtypes)
        A, rlo, rhi = milp.matrix()
        if A.shape[0]:
            both = np.isfinite(rlo) & np.isfinite(rhi) & (rlo == rhi)
            for mask, kind in ((both, "eq"), (~both & np.isfinite(rlo), "ge"), (~both & np.isfinite(rhi), "le")):
                if mask.any():
                    sub = A[mask]
                    if kind == "eq":
                        m.addConstr(sub @ x == rlo[mask])
                    elif kind == "ge":
                        m.addConstr(sub @ x >= rlo[mask])
                    else:
                        m.addConstr(sub @ x <= rhi[mask])
        for a, b in milp.sos1:
            m.addSOS(gp.GRB.SOS_TYPE1, [x[a].item(), x[b].item()])
        m.setObjective(milp.cost() @ x + milp.constant, gp.GRB.MAXIMIZE)
        if warm is not None:
            x.Start = np.asarray(warm, float)
        start = time.perf_counter()
        m.optimize()
        elapsed = time.perf_counter() - start
    except gp.GurobiError as exc:
        if getattr(exc, "errno", None) == 10010:
            raise BackendUnavailableError(
                f"the model ({milp.n_vars} variables, {n_cons} constraints) does not fit this Gurobi license "
                f"(at most {GUROBI_FREE_ROWS} variables and {GUROBI_FREE_ROWS} constraints)") from None
        raise SolverError(f"Gurobi failed: {exc}") from None
    mapped = {gp.GRB.OPTIMAL: "optimal", gp.GRB.TIME_LIMIT: "time_limit",
              gp.GRB.INFEASIBLE: "infeasible"}.get(m.Status, f"gurobi status {m.Status}")
    solution = np.asarray(x.X, float) if m.SolCount > 0 else None
    lower = float(m.ObjVal) if m.SolCount > 0 else float("-inf")
    upper = _finite(float(m.ObjBound)) if mapped != "infeasible" else float("-inf")
    if mapped == "optimal":
        upper = max(upper, lower)
    return MILPResult("gurobi", mapped, lower, upper, solution, elapsed, int(m.NodeCount))


def time_to_bound(history: list, bound: float, tol: float = 1e-6) -> float | None:
    """Seconds until the dual bound first fell to ``bound`` (within ``tol`` relative), or None if it never did."""
    for t, _, dual in history:
        if dual <= bound + tol * max(1.0, abs(bound)):
            return float(t)
    return None
