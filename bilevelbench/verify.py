"""Re-run the independent checks on every label of an instance-set file.

``bilevelbench verify FILE`` uses this. Nothing here trusts the solver that
produced the labels: the lower level is re-solved by HiGHS, residuals are
recomputed from the stored structure and parameters, and with ``oracle=True``
every certified optimum is compared with the active-set enumeration solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.certify.checks import Tolerances, check_label
from bilevelbench.certify.enumeration import MAX_ENUMERATED_ROWS, solve_by_enumeration
from bilevelbench.certify.label import SOLUTION_STATUSES, STATUSES
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_instance_set`: one entry per failing instance."""

    checked: int = 0
    failures: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _verify_each(ds: InstanceSet, progress: Callable[[int], object] | None,
                 check: Callable[[int, str], list[str]]) -> VerifyReport:
    """Run ``check(pos, status)`` (the problems found with one label, empty when it passes) over ``ds``."""
    statuses = ds.labels["status"]
    report = VerifyReport()
    bar = progress(len(ds)) if progress else None
    try:
        for pos, index in enumerate(ds.indices):
            status = str(statuses[pos])
            problems = check(pos, status)
            report.checked += 1
            if problems:
                report.failures.append((int(index), status, "; ".join(problems)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return report


def tolerances_of(ds: InstanceSet) -> Tolerances:
    """The check tolerances recorded in the file (defaults for any missing entry)."""
    recorded = ds.meta.get("certifier_settings", {}).get("tolerances", {})
    known = set(Tolerances.__dataclass_fields__)
    return Tolerances(**{k: float(v) for k, v in recorded.items() if k in known})


def verify_instance_set(ds: InstanceSet, oracle: bool = False,
                        progress: Callable[[int], object] | None = None) -> VerifyReport:
    """Check every label of ``ds``; see the module docstring."""
    if ds.is_miqp:
        return verify_miqp_set(ds, progress)
    if ds.is_dcopf:
        return verify_dcopf_set(ds, progress)
    if ds.is_ccd:
        return verify_ccd_set(ds, progress)
    s = ds.structure
    if oracle and s.n_lower_constraints > MAX_ENUMERATED_ROWS:
        raise UsageError(f"--oracle enumerates 2^p active sets and takes at most {MAX_ENUMERATED_ROWS} "
                         f"lower-level rows; this set has {s.n_lower_constraints}")
    tol = tolerances_of(ds)
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        c, d = params["c"][pos], params["d"][pos]
        y, z, lam = labels["y"][pos], labels["z"][pos], labels["lam"][pos]
        problems: list[str] = []
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(d))):
            problems.append("parameters contain NaN or inf")
        elif status not in STATUSES:
            problems.append(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
        elif status in SOLUTION_STATUSES:
            result = check_label(s, c, d, y, z, lam, float(labels["objective"][pos]),
                                 float(labels["dual_bound"][pos]), tol)
            if status == "certified_optimal" and not result.passed:
                problems.extend(result.failures)
            if status == "best_known" and not result.feasible:
                problems.extend(result.failures)
            if oracle and status == "certified_optimal" and not problems:
                exact = solve_by_enumeration(s, c, d)
                objective = float(labels["objective"][pos])
                if abs(objective - exact.objective) > tol.rel_gap * max(1.0, abs(exact.objective)):
                    problems.append(f"objective {objective:.10g} differs from the enumeration optimum "
                                    f"{exact.objective:.10g}")
        elif np.any(np.isfinite(y)) or np.any(np.isfinite(z)):
            problems.append(f"status {status!r} but a solution is stored (unchecked points must not be published)")
        return problems

    return _verify_each(ds, progress, check)


def verify_miqp_set(ds: InstanceSet, progress: Callable[[int], object] | None = None) -> VerifyReport:
    """Re-check every label of a mixed-integer set with HiGHS only (no MIQP solver involved).

    Certified labels: integrality, rows and bounds (<= 1e-7 scaled), the stored objective equals ``f`` at the
    stored point, the continuous QP re-solved with the stored integers is not better than the stored point
    (<= 1e-6 relative), and the stored dual bound is within 1e-6 of the objective. Infeasible labels: HiGHS's
    MILP proves infeasibility again. Other statuses must store no point.
    """
    from bilevelbench.certify.miqp import check_point
    from bilevelbench.families.miqp import integer_feasibility, objective, solve_fixed_integers

    s = ds.structure
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        theta, x = params["theta"][pos], labels["x"][pos]
        problems: list[str] = []
        if not np.all(np.isfinite(theta)):
            problems.append("parameters contain NaN or inf")
        elif status == "certified_optimal":
            f_stored = float(labels["objective"][pos])
            rows, bounds, integ = check_point(s, theta, x)
            if max(rows, bounds) > 1e-7 or integ > 0:
                problems.append(f"stored point violates rows {rows:.1e} / bounds {bounds:.1e} / integrality {integ:.1e}")
            f = float(objective(s, x, theta)[0])
            if abs(f - f_stored) > 1e-9 * max(1.0, abs(f)):
                problems.append(f"stored objective {f_stored:.10g} differs from f(x) = {f:.10g}")
            fixed = solve_fixed_integers(s, theta, x[s.integer])
            if fixed.status != "optimal" or fixed.objective < f - 1e-6 * max(1.0, abs(f)):
                problems.append(f"re-solving the continuous part gives {fixed.status} {fixed.objective:.10g} < {f:.10g}")
            if f - float(labels["dual_bound"][pos]) > 1e-6 * max(1.0, abs(f)):
                problems.append(f"gap to the stored dual bound {labels['dual_bound'][pos]:.10g} exceeds 1e-6")
        elif status == "infeasible":
            verdict = integer_feasibility(s, theta)
            if verdict != "infeasible":
                problems.append(f"labelled infeasible but HiGHS's MILP check says {verdict}")
        elif np.any(np.isfinite(x)):
            problems.append(f"status {status!r} but a solution is stored (unchecked points must not be published)")
        return problems

    return _verify_each(ds, progress, check)


def verify_dcopf_set(ds: InstanceSet, progress: Callable[[int], object] | None = None) -> VerifyReport:
    """Re-check every label of a DC-OPF set from the structure alone (no solver involved).

    Certified labels: the stored dispatch, LMPs and line duals pass :func:`bilevelbench.certify.dcopf.check_label`
    under the tolerances recorded in the file (limits, balance, LMP consistency, duality gap against the
    closed-form dual value), and the stored objective and flows equal the recomputed ones. Infeasible labels:
    demand lies outside the generation range. Other statuses must store no dispatch.
    """
    from bilevelbench.certify.dcopf import DCOPFCertifierSettings, check_label

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

    return _verify_each(ds, progress, check)


def verify_ccd_set(ds: InstanceSet, progress: Callable[[int], object] | None = None) -> VerifyReport:
    """Re-check every label of a control co-design set.

    ``best_known`` labels: the design is finite and inside its box, and the follower's response recomputed for
    the instance alone gives the stored objective, cost and violation (to ``1e-9 (1 + |f|)``); for
    ``ccd-hvac`` the follower's QP is also re-solved by HiGHS, whose optimal value must match the response's
    (``1e-7 (1 + |value|)``). No label may be ``certified_optimal`` (these sets have no certificates); other
    statuses must store no design.
    """
    from bilevelbench.generate_ccd import RECOMPUTE_TOL, design_violation, evaluate

    s, family = ds.structure, ds.family
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        one = {k: v[pos:pos + 1] for k, v in params.items()}
        design = labels["design"][pos:pos + 1]
        problems: list[str] = []
        if not all(np.all(np.isfinite(v)) for v in one.values()):
            problems.append("parameters contain NaN or inf")
        elif status == "certified_optimal":
            problems.append("a control co-design label claims certified_optimal; only best_known labels exist")
        elif status == "best_known":
            if not np.all(np.isfinite(design)):
                return ["best_known label without a finite design"]
            box = float(design_violation(family, s, design)[0])
            if box > 0:
                problems.append(f"design outside its box by {box:.2e}")
            got = evaluate(family, s, design, one)
            for key in ("objective", "cost", "violation"):
                stored = float(labels[key][pos])
                if abs(float(got[key][0]) - stored) > RECOMPUTE_TOL * (1 + abs(stored)):
                    problems.append(f"recomputed {key} {float(got[key][0]):.12g} differs from the stored {stored:.12g}")
            if family == "ccd-hvac":
                from bilevelbench.families.ccd_hvac import highs_follower_value

                ref = highs_follower_value(s, design[0], {k: v[0] for k, v in one.items()})
                value = float(got["follower_objective"][0])
                if abs(ref - value) > 1e-7 * (1 + abs(ref)):
                    problems.append(f"HiGHS solves the follower's QP to {ref:.10g}, the response has {value:.10g}")
        elif np.any(np.isfinite(design)):
            problems.append(f"status {status!r} but a design is stored (unchecked points must not be published)")
        return problems

    return _verify_each(ds, progress, check)
