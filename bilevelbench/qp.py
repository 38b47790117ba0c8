"""Convex quadratic programs through HiGHS.

One small, dense interface used wherever bilevelbench needs a convex QP or LP
solved by a solver *other than* the mixed-integer certifier: the follower's
response, the independent label checks, bound derivation and the
active-set enumeration oracle.

Problem form::

    min  1/2 x'Px + c'x + offset
    s.t. row_lower <= A x <= row_upper
         col_lower <= x <= col_upper
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import SolverError

INF = highspy.kHighsInf

_local = threading.local()


@contextlib.contextmanager
def _stdout_silenced():
    """Silence C-level stdout (HiGHS prints a banner from its constructor)."""
    try:
        fd = os.dup(1)
    except OSError:  # no stdout at all
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(fd, 1)
    finally:
        os.close(fd)


#: Proximal regularisation HiGHS's QP solver adds (its default, 1e-7, is too coarse for labels and scoring).
QP_REGULARIZATION = 1e-12


def _highs() -> highspy.Highs:
    """Return this thread's quiet, reusable HiGHS instance."""
    h = getattr(_local, "highs", None)
    if h is None:
        with _stdout_silenced():
            h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        # HiGHS regularises QPs by 1e-7 by default, which leaves stationarity errors of about 1e-6 and
        # follower responses off by up to 1e-5 on these problems; 1e-12 gives agreement to about 1e-10 with
        # an independent interior-point + active-set solve (bilevelbench.torch.qp_layer).
        h.setOptionValue("qp_regularization_value", QP_REGULARIZATION)
        _local.highs = h
    return h


def _set_time_limit(h: highspy.Highs, seconds: float) -> None:
    """Give the next ``run`` of the reused instance ``seconds`` of its own.

    HiGHS compares ``time_limit`` with the instance's *cumulative* run clock (ERGO-Code/HiGHS#1477; highspy
    has no ``zeroAllClocks``), so a plain limit on a reused instance runs out for good once all earlier solves
    together took that long, and every later solve stops at once with "Time limit reached".
    """
    h.setOptionValue("time_limit", float(h.getRunTime()) + float(seconds))


@dataclass(frozen=True)
class QPResult:
    """Outcome of one convex QP solve.

    Attributes
    ----------
    status : str
        ``"optimal"``, ``"infeasible"``, ``"unbounded"`` or ``"error: <HiGHS status>"``.
    x : numpy.ndarray
        Primal solution (NaN when not optimal).
    row_dual : numpy.ndarray
        Multipliers of the rows, sign-normalised so that a multiplier of an active
        *upper* row bound is non-negative and of an active *lower* row bound is
        non-positive.
    objective : float
        Objective value including ``offset`` (NaN when not optimal).
    """

    status: str
    x: np.ndarray
    row_dual: np.ndarray
    objective: float

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"


def _linear_part(c: np.ndarray, A: np.ndarray, row_lower, row_upper, col_lower, col_upper,
                 offset: float) -> highspy.HighsLp:
    """The ``HighsLp`` (costs, bounds, column-wise sparse rows) shared by the QP and MILP entry points."""
    n, k = c.shape[0], A.shape[0]
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = k
    lp.col_cost_ = c
    lp.col_lower_ = np.asarray(col_lower, dtype=float)
    lp.col_upper_ = np.asarray(col_upper, dtype=float)
    lp.row_lower_ = np.asarray(row_lower, dtype=float)
    lp.row_upper_ = np.asarray(row_upper, dtype=float)
    lp.offset_ = float(offset)
    a_csc = sp.csc_matrix(A)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = k
    lp.a_matrix_.start_ = a_csc.indptr
    lp.a_matrix_.index_ = a_csc.indices
    lp.a_matrix_.value_ = a_csc.data
    return lp


def solve_convex_qp(
    P: np.ndarray | None,
    c: np.ndarray,
    A: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray | None = None,
    col_upper: np.ndarray | None = None,
    offset: float = 0.0,
    time_limit: float = 60.0,
) -> QPResult:
    """Solve a convex QP (or an LP when ``P`` is None) with HiGHS.

    Parameters
    ----------
    P : (n, n) array or None
        Symmetric positive semidefinite Hessian; None for a linear program.
    c : (n,) array
        Linear objective.
    A : (k, n) array
        Row matrix (k may be 0).
    row_lower, row_upper : (k,) arrays
        Row bounds; use ``-INF`` / ``INF`` for absent sides.
    col_lower, col_upper : (n,) arrays, optional
        Column bounds, free by default.
    offset : float
        Constant added to the objective.
    time_limit : float
        Seconds before HiGHS gives up.

    Returns
    -------
    QPResult
    """
    c = np.asarray(c, dtype=float)
    n = c.shape[0]
    A = np.asarray(A, dtype=float).reshape(-1, n)
    k = A.shape[0]
    col_lower = np.full(n, -INF) if col_lower is None else np.asarray(col_lower, dtype=float)
    col_upper = np.full(n, INF) if col_upper is None else np.asarray(col_upper, dtype=float)

    lp = _linear_part(c, A, row_lower, row_upper, col_lower, col_upper, offset)

    model = highspy.HighsModel()
    model.lp_ = lp
    if P is not None:
        lower = sp.csc_matrix(np.tril(np.asarray(P, dtype=float)))
        if lower.nnz:
            hess = highspy.HighsHessian()
            hess.dim_ = n
            hess.format_ = highspy.HessianFormat.kTriangular
            hess.start_ = lower.indptr
            hess.index_ = lower.indices
            hess.value_ = lower.data
            model.hessian_ = hess

    h = _highs()
    h.clearModel()
    _set_time_limit(h, time_limit)
    if h.passModel(model) == highspy.HighsStatus.kError:
        raise SolverError(f"HiGHS refused a QP with {n} columns and {k} rows (inconsistent data)")
    h.run()
    status = h.getModelStatus()
    nan_x = np.full(n, np.nan)
    if status == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        # HiGHS reports minimisation duals with the sign of d(objective)/d(bound):
        # negative for an active upper bound. Flip so upper-bound multipliers are >= 0.
        dual = -np.asarray(sol.row_dual, dtype=float)
        return QPResult("optimal", np.asarray(sol.col_value, dtype=float), dual,
                        float(h.getInfo().objective_function_value))
    if status == highspy.HighsModelStatus.kInfeasible:
        return QPResult("infeasible", nan_x, np.full(k, np.nan), np.nan)
    if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
        return QPResult("unbounded", nan_x, np.full(k, np.nan), np.nan)
    return QPResult(f"error: {h.modelStatusToString(status)}", nan_x, np.full(k, np.nan), np.nan)


def solve_milp(
    c: np.ndarray,
    A: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    col_lower: np.ndarray,
    col_upper: np.ndarray,
    integer: np.ndarray,
    time_limit: float = 60.0,
) -> QPResult:
    """Solve a mixed-integer linear program with HiGHS (``integer``: boolean mask of integer columns).

    Used as an independent check (HiGHS proving that a model the mixed-integer solver called
    infeasible has no integer-feasible point at all). ``row_dual`` is NaN.
    """
    c = np.asarray(c, dtype=float)
    n = c.shape[0]
    A = np.asarray(A, dtype=float).reshape(-1, n)
    k = A.shape[0]
    lp = _linear_part(c, A, row_lower, row_upper, col_lower, col_upper, 0.0)
    lp.integrality_ = [highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous
                       for flag in np.asarray(integer, dtype=bool)]
    h = _highs()
    h.clearModel()
    _set_time_limit(h, time_limit)
    if h.passModel(lp) == highspy.HighsStatus.kError:
        raise SolverError(f"HiGHS refused a MILP with {n} columns and {k} rows (inconsistent data)")
    h.run()
    status = h.getModelStatus()
    nan_x = np.full(n, np.nan)
    if status == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        return QPResult("optimal", np.asarray(sol.col_value, dtype=float), np.full(k, np.nan),
                        float(h.getInfo().objective_function_value))
    if status == highspy.HighsModelStatus.kInfeasible:
        return QPResult("infeasible", nan_x, np.full(k, np.nan), np.nan)
    return QPResult(f"error: {h.modelStatusToString(status)}", nan_x, np.full(k, np.nan), np.nan)


def solve_strictly_convex_qp(P: np.ndarray, c: np.ndarray, A: np.ndarray, row_upper: np.ndarray,
                             offset: float = 0.0, tol: float = 1e-9) -> QPResult:
    """``min 1/2 x'Px + c'x + offset  s.t.  A x <= row_upper`` for a positive definite ``P``, by the dual active-set
    method of Goldfarb and Idnani (``quadprog``), accepted only if its KKT conditions hold.

    The second opinion where HiGHS's QP solver fails on a small, strictly convex QP (it can end with "Solve error"
    at degenerate vertices, where a row's slack is zero with a zero multiplier). The solution is checked, scaled
    by the data: stationarity ``P x + c + A' lam = 0``, primal feasibility, ``lam >= 0`` and complementarity, each
    to ``tol``; a solution that fails a check is reported as ``"error: ..."``, never returned as optimal.
    ``row_dual`` holds ``lam`` (non-negative, like :func:`solve_convex_qp`'s upper-bound multipliers).
    """
    import quadprog

    P = np.array(P, dtype=float)
    c = np.asarray(c, dtype=float)
    A = np.asarray(A, dtype=float).reshape(-1, c.shape[0])
    u = np.asarray(row_upper, dtype=float)
    n, k = c.shape[0], A.shape[0]
    nan = QPResult("error: no solution", np.full(n, np.nan), np.full(k, np.nan), np.nan)
    try:
        x, value, _, _, lam, _ = quadprog.solve_qp(P, -c, np.ascontiguousarray(-A.T), -u, 0)
    except ValueError as exc:
        if "inconsistent" in str(exc):
            return QPResult("infeasible", nan.x, nan.row_dual, np.nan)
        return QPResult(f"error: {exc}", nan.x, nan.row_dual, np.nan)
    scale = 1.0 + max(float(np.abs(P).max(initial=0.0)), float(np.abs(c).max(initial=0.0)),
                      float(np.abs(u).max(initial=0.0)))
    slack = u - A @ x
    stationarity = P @ x + c + A.T @ lam
    checks = {"stationarity": float(np.abs(stationarity).max(initial=0.0)),
              "feasibility": float(np.maximum(-slack, 0.0).max(initial=0.0)),
              "dual sign": float(np.maximum(-lam, 0.0).max(initial=0.0)),
              "complementarity": float(np.abs(lam * slack).max(initial=0.0))}
    failed = [name for name, value_ in checks.items() if value_ > tol * scale]
    if failed:
        return QPResult(f"error: the active-set solution fails {', '.join(failed)}", nan.x, nan.row_dual, np.nan)
    return QPResult("optimal", x, lam, float(value + offset))
