"""Certified DC-OPF labels: one HiGHS model per grid, re-solved per load vector, checked without any solver.

Solving. :class:`DCOPFModel` builds the angle formulation once (columns ``pg``, bus angles ``va``, thermal
violations ``xi`` of the limited branches; one balance row per bus, two thermal rows per limited branch; all
sparse) and per instance changes only the balance rows' right-hand side, so HiGHS's dual simplex starts from
the previous basis. Linear costs give an LP; quadratic ones a convex QP (HiGHS's QP solver).

Certificate (:func:`check_label`, no solver involved). From HiGHS's dispatch ``pg`` and multipliers:

* primal: generator limits, power balance, flows recomputed by sparse solves (the PTDF of
  :class:`~bilevelbench.families.dcopf.DCOPFStructure`), ``xi = max(0, |f| - rate)``; the objective is
  recomputed from these and must agree with HiGHS's;
* dual: the energy price and line multipliers are clipped into the dual feasible set and the Lagrangian dual
  value is evaluated in closed form (:meth:`DCOPFStructure.dual_bound`), a lower bound on the optimum whatever
  HiGHS did; the LMPs HiGHS reports must equal ``price - PTDF' (mu_u - mu_l)``;
* the label is ``certified_optimal`` when every residual is within :class:`DCOPFCertifierSettings` and the
  relative duality gap ``(f - dual) / max(1, |f|)`` is at most ``gap``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import SolverError, UsageError
from bilevelbench.families.dcopf.problem import DCOPFStructure
from bilevelbench.qp import _set_time_limit, _stdout_silenced

log = logging.getLogger(__name__)

#: Names of the stored check residuals, in order.
DCOPF_CHECK_FIELDS = ("bound_violation", "balance_residual", "objective_agreement", "lmp_consistency", "rel_gap")


@dataclass(frozen=True)
class DCOPFCertifierSettings:
    """Tolerances of a certified DC-OPF label (MW and relative units; documented in docs/families/mimpc.md)."""

    #: Largest generator-limit violation, MW.
    bound_tol: float = 1e-6
    #: Largest power imbalance relative to ``1 + total demand`` (MW / MW).
    balance_tol: float = 1e-8
    #: ``|f_recomputed - f_highs| / max(1, |f|)``.
    agreement_tol: float = 1e-7
    #: ``max |LMP - (price - PTDF' mu)| / max(1, max |LMP|)``.
    lmp_tol: float = 1e-6
    #: Relative duality gap ``(f - dual) / max(1, |f|)``.
    gap: float = 1e-6
    #: Seconds HiGHS may spend on one instance.
    time_limit: float = 60.0

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not (np.isfinite(value) and value > 0):
                raise UsageError(f"certifier setting {key} must be positive and finite, got {value}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DCOPFLabel:
    """One instance's label (NaN arrays unless a solution is published)."""

    pg: np.ndarray
    flow: np.ndarray
    xi: np.ndarray
    lmp: np.ndarray
    line_dual: np.ndarray
    price: float
    objective: float
    dual_bound: float
    status: str
    reason: str = ""
    solve_time: float = float("nan")
    iterations: int = 0
    checks: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, s: DCOPFStructure, status: str, reason: str) -> DCOPFLabel:
        nan = np.nan
        return cls(pg=np.full(s.n_gen, nan), flow=np.full(s.n_branch, nan), xi=np.full(s.n_branch, nan),
                   lmp=np.full(s.n_bus, nan), line_dual=np.full(s.n_branch, nan), price=nan, objective=nan,
                   dual_bound=nan, status=status, reason=reason)


class DCOPFModel:
    """The angle formulation of one grid in a persistent HiGHS instance; :meth:`solve` changes only ``pd``."""

    def __init__(self, s: DCOPFStructure, time_limit: float = 60.0) -> None:
        self.s = s
        self.time_limit = float(time_limit)
        ng, nb = s.n_gen, s.n_bus
        lim = s.limited
        self.lim = lim
        k = lim.size
        self.cols = {"pg": slice(0, ng), "va": slice(ng, ng + nb), "xi": slice(ng + nb, ng + nb + k)}
        n = ng + nb + k
        # balance: Cg pg - Bbus va = pd + gs + pbusinj
        balance = sp.hstack([s.Cg, -s.Bbus, sp.csr_matrix((nb, k))])
        Bf = s.Bf[lim]
        eye = sp.identity(k, format="csr")
        upper = sp.hstack([sp.csr_matrix((k, ng)), Bf, -eye])        # Bf va - xi <= rate - pfinj
        lower = sp.hstack([sp.csr_matrix((k, ng)), Bf, eye])         # Bf va + xi >= -rate - pfinj
        A = sp.vstack([balance, upper, lower]).tocsc()
        rate, pf = s.rate[lim], s.pfinj[lim]
        inf = highspy.kHighsInf
        self.row_lower = np.concatenate([np.zeros(nb), np.full(k, -inf), -rate - pf])
        self.row_upper = np.concatenate([np.zeros(nb), rate - pf, np.full(k, inf)])
        col_lower = np.concatenate([s.pmin, np.full(nb, -inf), np.zeros(k)])
        col_upper = np.concatenate([s.pmax, np.full(nb, inf), np.full(k, inf)])
        col_lower[ng + s.ref] = col_upper[ng + s.ref] = 0.0
        cost = np.concatenate([s.cost[:, 1], np.zeros(nb), np.full(k, s.penalty)])

        model = highspy.HighsModel()
        lp = model.lp_
        lp.num_col_, lp.num_row_ = n, A.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, col_lower, col_upper
        lp.row_lower_, lp.row_upper_ = self.row_lower, self.row_upper
        lp.offset_ = float(s.cost[:, 2].sum())
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
        c2 = s.cost[:, 0]
        self.quadratic = bool(np.any(c2 != 0))
        if np.any(c2 < 0):
            raise UsageError("dcopf: negative quadratic cost coefficients make the problem nonconvex")
        if self.quadratic:
            hess = highspy.HighsHessian()
            hess.dim_ = n
            hess.format_ = highspy.HessianFormat.kTriangular
            diag = np.zeros(n)
            diag[:ng] = 2.0 * c2
            H = sp.diags(diag).tocsc()
            H.eliminate_zeros()
            hess.start_, hess.index_, hess.value_ = H.indptr, H.indices, H.data
            model.hessian_ = hess
        with _stdout_silenced():
            self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", 1)
        if self.h.passModel(model) == highspy.HighsStatus.kError:
            raise SolverError(f"HiGHS refused the DC-OPF model of {s.case or 'this grid'}")
        self.nb = nb
        self.bal_index = np.arange(nb, dtype=np.int32)

    def reset(self) -> None:
        """Forget the last basis: the next solve starts cold, as in a fresh model.

        Warm starts make a label depend (in its last bits) on the instance solved before it; generation resets
        at the start of every shard so a shard's labels are the same whichever worker computes it and whether
        or not the run was resumed.
        """
        self.h.clearSolver()

    def solve(self, pd: np.ndarray) -> dict:
        """Solve at loads ``pd`` (nb,); returns HiGHS's answer (``status`` and, when optimal, the arrays)."""
        s = self.s
        rhs = np.asarray(pd, float) + s.gs + s.pbusinj
        self.h.changeRowsBounds(self.nb, self.bal_index, rhs, rhs)
        _set_time_limit(self.h, self.time_limit)
        start = time.perf_counter()
        self.h.run()
        elapsed = time.perf_counter() - start
        status = self.h.getModelStatus()
        info = self.h.getInfo()
        out = {"status": self.h.modelStatusToString(status), "time": elapsed,
               "iterations": int(info.simplex_iteration_count + max(info.qp_iteration_count, 0))}
        if status != highspy.HighsModelStatus.kOptimal:
            out["optimal"] = False
            out["infeasible"] = status == highspy.HighsModelStatus.kInfeasible
            return out
        sol = self.h.getSolution()
        x = np.asarray(sol.col_value, float)
        dual = np.asarray(sol.row_dual, float)
        k = self.lim.size
        line_u = np.zeros(s.n_branch)
        line_l = np.zeros(s.n_branch)
        # HiGHS's row duals are d(objective)/d(bound): >= 0 on a binding lower bound, <= 0 on an upper one
        line_u[self.lim] = -dual[self.nb:self.nb + k]
        line_l[self.lim] = dual[self.nb + k:]
        out.update(optimal=True, pg=x[self.cols["pg"]], va=x[self.cols["va"]],
                   lmp=dual[: self.nb].copy(), mu_upper=line_u, mu_lower=line_l,
                   objective=float(info.objective_function_value))
        return out


def check_label(s: DCOPFStructure, pd: np.ndarray, pg: np.ndarray, lmp: np.ndarray, mu_upper: np.ndarray,
                mu_lower: np.ndarray, solver_objective: float | None = None) -> dict:
    """Residuals of a candidate label, computed from the structure alone (no solver).

    Returns ``objective``, ``dual_bound``, ``price``, ``flow``, ``xi`` and the :data:`DCOPF_CHECK_FIELDS`
    residuals (``objective_agreement`` is NaN without ``solver_objective``).
    """
    pd = np.asarray(pd, float).reshape(1, s.n_bus)
    pg = np.asarray(pg, float).reshape(1, s.n_gen)
    flow = s.flows(pg, pd)
    xi = s.thermal_violation(flow)
    f = float(s.generation_cost(pg)[0] + s.penalty * xi.sum())
    price = float(lmp[s.ref])
    dual = float(s.dual_bound(pd, np.array([price]), mu_upper[None], mu_lower[None])[0])
    implied = s.lmp(np.array([price]), (mu_upper - mu_lower)[None])[0]
    scale = max(1.0, float(np.abs(lmp).max()))
    demand = float(np.abs(pd).sum() + np.abs(s.gs).sum())
    checks = {
        "bound_violation": float(s.bound_violation(pg)[0]),
        "balance_residual": abs(float(s.balance_residual(pg, pd)[0])) / (1.0 + demand),
        "objective_agreement": (abs(f - solver_objective) / max(1.0, abs(f))
                                if solver_objective is not None else float("nan")),
        "lmp_consistency": float(np.abs(lmp - implied).max()) / scale,
        "rel_gap": max(0.0, f - dual) / max(1.0, abs(f)),
    }
    return {"objective": f, "dual_bound": dual, "price": price, "flow": flow[0], "xi": xi[0], "checks": checks}


#: A generator is strictly inside its limits when it is this far (MW, relative to 1 + its range) from both.
FREE_TOL = 1e-7


def free_generators(s: DCOPFStructure, pg: np.ndarray) -> np.ndarray:
    """Generators strictly inside their limits at ``pg`` (their marginal cost sets the price at their bus)."""
    room = FREE_TOL * (1.0 + (s.pmax - s.pmin))
    return (pg > s.pmin + room) & (pg < s.pmax - room)


def marginal_cost_residual(s: DCOPFStructure, pg: np.ndarray, lmp: np.ndarray) -> float:
    """``max |LMP(bus_g) - (c1 + 2 c2 pg)_g| / max(1, max |LMP|)`` over free generators (0 when none is free):
    at an optimum a generator strictly inside its limits produces exactly where its marginal cost meets the price."""
    free = free_generators(s, pg)
    if not free.any():
        return 0.0
    marginal = s.cost[free, 1] + 2.0 * s.cost[free, 0] * pg[free]
    return float(np.abs(lmp[s.gen_bus[free]] - marginal).max()) / max(1.0, float(np.abs(lmp).max()))


def exact_prices(s: DCOPFStructure, pd: np.ndarray, res: dict) -> dict:
    """Recompute the energy price and the multipliers of branches at their limit from the optimality conditions
    of the generators strictly inside their limits (quadratic costs: HiGHS's QP duals carry its tolerance,
    about 2e-6 relative).

    For a free generator ``g``: ``c1_g + 2 c2_g pg_g = price - (PTDF' mu)[bus_g]``, with ``mu = M`` (signed) on
    overloaded branches, 0 on branches inside their limits and unknown on branches exactly at a limit. The
    unknowns are solved by least squares; the result replaces HiGHS's duals when it satisfies every equation to
    rounding and keeps each multiplier in ``[0, M]``; otherwise HiGHS's are kept (and the certificate judges them).
    """
    pg = res["pg"]
    free = free_generators(s, pg)
    if not free.any():
        return res
    flow = s.flows(pg[None], np.asarray(pd, float)[None])[0]
    rate = s.rate
    limited = np.isfinite(rate)
    tol = 1e-7 * (1.0 + np.where(limited, rate, 0.0))
    over = limited & (np.abs(flow) > rate + tol)
    at_limit = limited & ~over & (np.abs(flow) >= rate - tol)
    mu = np.zeros(s.n_branch)                          # mu_upper - mu_lower
    mu[over] = s.penalty * np.sign(flow[over])
    lines = np.flatnonzero(at_limit)
    ptdf_rows = s.ptdf_t(np.eye(s.n_branch)[lines]) if lines.size else np.zeros((0, s.n_bus))   # (L, nb)
    buses = s.gen_bus[free]
    marginal = s.cost[free, 1] + 2.0 * s.cost[free, 0] * pg[free]
    known = s.ptdf_t(mu[None])[0][buses] if over.any() else np.zeros(buses.size)
    # marginal = price - known - sum_l PTDF[l, bus] mu_l
    A = np.hstack([np.ones((buses.size, 1)), -ptdf_rows[:, buses].T])
    rhs = marginal + known
    sol, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    if np.abs(A @ sol - rhs).max() > 1e-9 * max(1.0, np.abs(rhs).max()):
        return res
    mu[lines] = sol[1:]
    if np.any(np.abs(sol[1:]) > s.penalty * (1 + 1e-9)) or np.any(sol[1:] * np.sign(flow[lines]) < -1e-9):
        return res
    price = float(sol[0])
    lmp = price - s.ptdf_t(mu[None])[0]
    return {**res, "lmp": lmp, "mu_upper": np.maximum(mu, 0.0), "mu_lower": np.maximum(-mu, 0.0)}


def certify_dcopf(model: DCOPFModel, pd: np.ndarray, settings: DCOPFCertifierSettings) -> DCOPFLabel:
    """Solve one instance and certify it, or return a ``failed`` / ``infeasible`` label with the reason."""
    s = model.s
    pd = np.asarray(pd, float)
    if pd.shape != (s.n_bus,) or not np.all(np.isfinite(pd)):
        raise UsageError(f"pd must be {s.n_bus} finite loads (MW), got shape {pd.shape}")
    res = model.solve(pd)
    if not res["optimal"]:
        if res["infeasible"]:
            demand = pd.sum() + s.gs.sum()
            lo, hi = s.pmin.sum(), s.pmax.sum()
            if not lo - 1e-6 <= demand <= hi + 1e-6:   # the only way the soft-limit problem is infeasible
                label = DCOPFLabel.empty(s, "infeasible", f"demand {demand:.6g} MW outside the generation range "
                                                          f"[{lo:.6g}, {hi:.6g}] MW")
                label.solve_time = res["time"]
                return label
        label = DCOPFLabel.empty(s, "failed", f"HiGHS ended with {res['status']}")
        label.solve_time = res["time"]
        return label
    if model.quadratic:
        res = exact_prices(s, pd, res)
    rep = check_label(s, pd, res["pg"], res["lmp"], res["mu_upper"], res["mu_lower"], res["objective"])
    c = rep["checks"]
    problems = []
    if c["bound_violation"] > settings.bound_tol:
        problems.append(f"generator limits violated by {c['bound_violation']:.2e} MW")
    if c["balance_residual"] > settings.balance_tol:
        problems.append(f"relative power imbalance {c['balance_residual']:.2e}")
    if c["objective_agreement"] > settings.agreement_tol:
        problems.append(f"recomputed objective differs from HiGHS's by {c['objective_agreement']:.2e} (relative)")
    if c["lmp_consistency"] > settings.lmp_tol:
        problems.append(f"LMPs differ from price - PTDF' mu by {c['lmp_consistency']:.2e} (relative)")
    marginal = marginal_cost_residual(s, res["pg"], res["lmp"])
    if marginal > settings.lmp_tol:
        problems.append(f"LMPs differ from the marginal cost c1 + 2 c2 pg of a generator strictly inside its limits "
                        f"by {marginal:.2e} (relative)")
    if c["rel_gap"] > settings.gap:
        problems.append(f"duality gap {c['rel_gap']:.2e} above {settings.gap:g}")
    line_dual = np.where(np.isfinite(s.rate), res["mu_upper"] - res["mu_lower"], 0.0)
    label = DCOPFLabel(pg=res["pg"], flow=rep["flow"], xi=rep["xi"], lmp=res["lmp"], line_dual=line_dual,
                       price=rep["price"], objective=rep["objective"], dual_bound=rep["dual_bound"],
                       status="certified_optimal", solve_time=res["time"], iterations=res["iterations"],
                       checks=c)
    if problems:
        failed = DCOPFLabel.empty(s, "failed", "; ".join(problems))
        failed.solve_time, failed.checks, failed.dual_bound = res["time"], c, rep["dual_bound"]
        return failed
    return label
