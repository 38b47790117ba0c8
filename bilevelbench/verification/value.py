"""``Phi(x)``, the optimal value of a :class:`~bilevelbench.verification.problem.ParametricProgram`, and its
gradient in ``x``, from one persistent HiGHS model whose row bounds move with ``x``.

* LP programs: the gradient is exact where ``Phi`` is differentiable: ``dPhi/dx = B' lambda`` with ``lambda``
  HiGHS's row duals (``d objective / d row bound``), because every row bound shifts by ``B x``.
* Programs with integer columns: the value is the MILP optimum (HiGHS, gap 0) and the gradient comes from the
  LP relaxation at the same ``x``: a value-function approximation (VFA) whose value bounds ``Phi`` from the
  optimistic side (above for a maximisation, below for a minimisation), so the attack over-rates gaps while it
  climbs and every candidate is re-valued exactly before it counts.
"""

from __future__ import annotations

import highspy
import numpy as np

from bilevelbench.errors import SolverError
from bilevelbench.qp import _set_time_limit
from bilevelbench.verification.problem import ParametricProgram


class ProgramValue:
    """``Phi(x)`` and ``dPhi/dx`` for batches of parameters.

    Parameters
    ----------
    program : ParametricProgram
    time_limit : float
        Seconds per solve.
    """

    def __init__(self, program: ParametricProgram, time_limit: float = 60.0) -> None:
        from bilevelbench.verification.milp import highs_model, quiet_highs

        self.p = program
        self._inf = highspy.kHighsInf
        A = program.A.tocsc()
        self.h = quiet_highs()
        self.time_limit = float(time_limit)
        self.h.setOptionValue("mip_rel_gap", 0.0)
        self.h.setOptionValue("mip_abs_gap", 0.0)
        sign = 1.0 if program.sense == "min" else -1.0
        self.sign = sign
        self.h.passModel(highs_model(A, sign * program.c, program.y_lower, program.y_upper, program.row_lower,
                                     program.row_upper, sign * program.c0))
        self.integrality = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                            for i in program.integer]
        self.BT = program.B.T.tocsr()
        self.rows = np.arange(A.shape[0], dtype=np.int32)
        self.cols = np.arange(program.n_y, dtype=np.int32)

    def _set_x(self, x: np.ndarray) -> None:
        shift = self.p.B @ x
        lo = np.where(np.isfinite(self.p.row_lower), self.p.row_lower + shift, -self._inf)
        hi = np.where(np.isfinite(self.p.row_upper), self.p.row_upper + shift, self._inf)
        self.h.changeRowsBounds(self.rows.size, self.rows, lo, hi)

    def _run(self, integer: bool) -> tuple[bool, float, np.ndarray, np.ndarray]:
        if self.p.is_lp is False:
            kinds = self.integrality if integer else [highspy.HighsVarType.kContinuous] * self.p.n_y
            self.h.changeColsIntegrality(self.p.n_y, self.cols, kinds)
        _set_time_limit(self.h, self.time_limit)     # the instance's run clock is cumulative
        self.h.run()
        status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kInfeasible:
            return False, float("nan"), np.full(self.p.n_y, np.nan), np.full(self.rows.size, np.nan)
        if status != highspy.HighsModelStatus.kOptimal:
            raise SolverError(f"HiGHS ended with {self.h.modelStatusToString(status)} while computing Phi(x)")
        sol = self.h.getSolution()
        value = self.sign * float(self.h.getInfo().objective_function_value)
        return True, value, np.asarray(sol.col_value, float), self.sign * np.asarray(sol.row_dual, float)

    def value(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``Phi`` (B,) and an optimal ``y`` (B, ny) for ``x`` (B, nx); NaN where the instance is infeasible."""
        x = np.atleast_2d(np.asarray(x, float))
        values = np.full(x.shape[0], np.nan)
        ys = np.full((x.shape[0], self.p.n_y), np.nan)
        for b in range(x.shape[0]):
            self._set_x(x[b])
            _, values[b], ys[b], _ = self._run(integer=True)
        return values, ys

    def value_and_grad(self, x: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``Phi`` (B,) and its gradient (B, nx): exact for LPs, from the LP relaxation (VFA) otherwise.

        With ``exact=False`` an integer program's value is its LP relaxation's too (the VFA alone: no MILP)."""
        x = np.atleast_2d(np.asarray(x, float))
        values = np.full(x.shape[0], np.nan)
        grads = np.zeros_like(x)
        for b in range(x.shape[0]):
            self._set_x(x[b])
            ok, relaxed, _, duals = self._run(integer=False)
            if not ok:
                continue
            grads[b] = self.BT @ duals
            values[b] = relaxed if self.p.is_lp or not exact else self._run(integer=True)[1]
        return values, grads
