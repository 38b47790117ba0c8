"""Independent re-checks of dcopf labels (``verify``) and the angle-formulation oracle (``verify --oracle``).

The labels are HiGHS's solution of the angle (B-theta) formulation, certified by their duals. ``verify`` re-checks
them from the structure alone (no solver). The oracle solves every certified instance again with a different
formulation *and* a different solver: the PTDF formulation (one system balance row; each limited branch's flow as a
PTDF row times the injections, no angles), solved by SCIP's LP solver (SoPlex); the optima must agree to
:data:`ORACLE_TOL` relative.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import LabelCheck
from bilevelbench.errors import SolverError

#: Relative agreement required between a label's objective and the oracle's.
ORACLE_TOL = 1e-6


def label_checker(ds) -> LabelCheck:
    """Certified labels: the stored dispatch, LMPs and line duals pass
    :func:`bilevelbench.families.dcopf.certify.check_label` under the tolerances recorded in the file (limits,
    balance, LMP consistency, duality gap against the closed-form dual value), and the stored objective and flows
    equal the recomputed ones. Infeasible labels: demand lies outside the generation range. Other statuses must
    store no dispatch."""
    from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings, check_label

    s = ds.structure
    recorded = ds.meta.get("certifier_settings", {})
    known = set(DCOPFCertifierSettings.__dataclass_fields__)
    tol = DCOPFCertifierSettings(**{k: float(v) for k, v in recorded.items() if k in known})
    limits = {"bound_violation": tol.bound_tol, "balance_residual": tol.balance_tol,
              "lmp_consistency": tol.lmp_tol, "rel_gap": tol.gap}
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        pd, pg = params["pd"][pos], labels["pg"][pos]
        problems: list[str] = []
        if not np.all(np.isfinite(pd)):
            problems.append("parameters contain NaN or inf")
        elif status == "certified_optimal":
            line = labels["line_dual"][pos]
            rep = check_label(s, pd, pg, labels["lmp"][pos], np.maximum(line, 0.0), np.maximum(-line, 0.0))
            for key, limit in limits.items():
                if not rep["checks"][key] <= limit:
                    problems.append(f"{key} {rep['checks'][key]:.2e} exceeds {limit:g}")
            f_stored = float(labels["objective"][pos])
            if abs(rep["objective"] - f_stored) > tol.agreement_tol * max(1.0, abs(f_stored)):
                problems.append(f"stored objective {f_stored:.10g} differs from the recomputed {rep['objective']:.10g}")
            if not np.allclose(rep["flow"], labels["flow"][pos], rtol=1e-9, atol=1e-6):
                problems.append("stored flows differ from the flows of the stored dispatch")
        elif status == "infeasible":
            demand = float(pd.sum() + s.gs.sum())
            if s.pmin.sum() - 1e-6 <= demand <= s.pmax.sum() + 1e-6:
                problems.append(f"labelled infeasible but demand {demand:.6g} MW is within the generation range")
        elif np.any(np.isfinite(pg)):
            problems.append(f"status {status!r} but a dispatch is stored (unchecked points must not be published)")
        return problems

    return check


def solve_ptdf_formulation(s, pd: np.ndarray, time_limit: float = 60.0) -> tuple[float, np.ndarray]:
    """The DC-OPF at loads ``pd`` in the PTDF formulation, solved by SCIP; returns ``(objective, pg)``.

    One balance row ``sum pg = sum (pd + gs)`` and, per limited branch, ``|PTDF_l (Cg pg - pd - gs - Pbusinj) +
    Pfinj_l| <= rate_l + xi_l``; the PTDF rows come from sparse solves with the reduced susceptance matrix.

    Raises
    ------
    SolverError
        If SCIP does not report an optimal solution.
    """
    import pyscipopt

    model = pyscipopt.Model("dcopf_ptdf")
    model.hideOutput()
    model.setParam("limits/time", float(time_limit))
    model.setParam("numerics/feastol", 1e-9)
    model.setParam("numerics/dualfeastol", 1e-9)
    ng = s.n_gen
    pg = [model.addVar(lb=float(s.pmin[g]), ub=float(s.pmax[g]), name=f"pg{g}") for g in range(ng)]
    demand = np.asarray(pd, float) + s.gs
    model.addCons(pyscipopt.quicksum(pg) == float(demand.sum()))
    lim = np.flatnonzero(np.isfinite(s.rate))
    eye = np.zeros((lim.size, s.n_branch))
    eye[np.arange(lim.size), lim] = 1.0
    rows = s.ptdf_t(eye) if lim.size else np.zeros((0, s.n_bus))      # PTDF rows of the limited branches
    fixed = rows @ (demand + s.pbusinj)
    penalty_terms = []
    for k, line in enumerate(lim):
        weights = rows[k, s.gen_bus]
        flow = pyscipopt.quicksum(float(weights[g]) * pg[g] for g in range(ng) if weights[g] != 0.0) \
            - float(fixed[k]) + float(s.pfinj[line])
        xi = model.addVar(lb=0.0, name=f"xi{line}")
        model.addCons(flow <= float(s.rate[line]) + xi)
        model.addCons(-flow <= float(s.rate[line]) + xi)
        penalty_terms.append(xi)
    c2, c1, c0 = s.cost[:, 0], s.cost[:, 1], s.cost[:, 2]
    objective = pyscipopt.quicksum(float(c1[g]) * pg[g] for g in range(ng)) + float(c0.sum()) + \
        float(s.penalty) * pyscipopt.quicksum(penalty_terms)
    if np.any(c2 != 0):
        t = model.addVar(lb=None, name="quadratic_cost")
        model.addCons(pyscipopt.quicksum(float(c2[g]) * pg[g] * pg[g] for g in range(ng)) <= t)
        objective = objective + t
    model.setObjective(objective, "minimize")
    model.optimize()
    if model.getStatus() != "optimal":
        raise SolverError(f"SCIP ended with status {model.getStatus()!r}")
    return float(model.getObjVal()), np.array([model.getVal(v) for v in pg])


def oracle_checker(ds) -> LabelCheck:
    """Every certified optimum against the PTDF formulation solved by SCIP (see the module docstring)."""
    s = ds.structure
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        f = float(labels["objective"][pos])
        try:
            other, _ = solve_ptdf_formulation(s, params["pd"][pos])
        except SolverError as exc:
            return [f"the oracle (PTDF formulation, SCIP) failed: {exc}"]
        if abs(other - f) > ORACLE_TOL * max(1.0, abs(f)):
            return [f"objective {f:.10g} differs from the PTDF formulation's optimum {other:.10g} (SCIP)"]
        return []

    return check
