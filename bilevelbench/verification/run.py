"""``bilevelbench verify-proxy``: the worst-case optimality gap of a proxy over an input domain, as a record.

Pipeline: the family's :class:`~bilevelbench.verification.problem.VerificationProblem` and the solver's exported
:class:`~bilevelbench.verification.graph.ProxyGraph` -> domain (box or data) -> feasibility of the domain ->
PGA (``method`` ``pga`` or ``both``) -> the MILP (``milp`` or ``both``, warm-started from the PGA witness) ->
the best witness re-checked independently (the submission's own ``solve`` at the witness, the family's own
objective of that answer, and the family's exact solver for ``Phi``) -> the ``worst_case`` block.

Bounds, in the objective's units: ``lower_bound`` is the re-checked gap at the witness (a gap that provably
occurs); ``upper_bound`` is the MILP's dual bound (no point of the domain has a larger gap), or ``null`` when no
MILP ran. Their relative forms divide by ``Phi`` at the witness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import UsageError
from bilevelbench.verification.attack import AttackSettings, attack
from bilevelbench.verification.encode import EncodeSettings, encode
from bilevelbench.verification.graph import ProxyGraph
from bilevelbench.verification.milp import lp_bound, solve
from bilevelbench.verification.problem import VerificationProblem, check_domain_feasible

log = logging.getLogger(__name__)

METHODS = ("pga", "milp", "both")
#: A re-checked gap may differ from the model's by this much (relative to ``1 + |Phi|``) before it is flagged:
#: the exported graph runs in float64, a submission may run its network in float32.
RECHECK_TOL = 1e-4


@dataclass
class VerifySettings:
    """Everything ``verify-proxy`` can be told."""

    method: str = "both"
    formulation: str = "compact"
    encoding: str = "bigm"
    backend: str = "scip"
    domain: str = "box"
    delta: float = 0.1
    time_limit: float = 600.0
    obbt: bool = True
    obbt_rounds: int = 2
    attack: AttackSettings | None = None
    threads: int = 1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"--method must be one of {', '.join(METHODS)}, received {self.method!r}")
        if not (np.isfinite(self.time_limit) and self.time_limit > 0):
            raise UsageError(f"--time-limit must be a positive number of seconds, received {self.time_limit}")
        if self.attack is None:
            self.attack = AttackSettings()


def recheck(problem: VerificationProblem, solve_fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> dict:
    """Re-check a witness independently: the submission's answer, its objective and the exact optimum.

    Returns
    -------
    dict
        ``params`` (the witness), ``proxy_solution``, ``proxy_objective``, ``optimal_objective`` and ``gap``.
    """
    x = np.asarray(x, float)
    answer = np.asarray(solve_fn(x[None]), float).reshape(1, -1)
    proxy_value = float(problem.answer_value(x[None], answer)[0])
    optimum = float(problem.exact_optimum(x[None])[0])
    gap = float(problem.gap(proxy_value, optimum))
    return {"params": x, "proxy_solution": answer[0], "proxy_objective": proxy_value,
            "optimal_objective": optimum, "gap": gap}


def verify_proxy(problem: VerificationProblem, graph: ProxyGraph, solve_fn: Callable[[np.ndarray], np.ndarray],
                 settings: VerifySettings, progress: Callable[[str], object] | None = None) -> dict:
    """Compute the worst case and return the record's ``worst_case`` block (JSON-ready).

    Parameters
    ----------
    problem : VerificationProblem
    graph : ProxyGraph
        The proxy as exported by its solver (checked: every layer must be supported).
    solve_fn : callable
        ``x (1, nx) -> decision (1, n)``: the submission's own ``solve`` (used for the re-check only).
    settings : VerifySettings
    progress : callable, optional
        Receives one short line per phase.

    Raises
    ------
    UnsupportedLayerError
        When the graph holds a layer that cannot be encoded exactly.
    InfeasibleDomainError
        When no parameter in the domain has a feasible instance.
    """
    graph.check_supported()
    say = progress or (lambda line: None)
    started = time.perf_counter()
    lower, upper = problem.domain(settings.domain, settings.delta)
    check_domain_feasible(problem, lower, upper)
    witness = None
    pga = None
    if settings.method in ("pga", "both"):
        say(f"PGA: {settings.attack.starts} starts x {settings.attack.steps} steps")
        pga = attack(problem, graph, lower, upper, settings.attack)
        witness = pga.x
        say(f"PGA: gap {pga.gap:.6g} {problem.units} in {pga.time_s:.1f} s")
    milp_block = None
    if settings.method in ("milp", "both"):
        enc = encode(problem, graph, lower, upper,
                     EncodeSettings(settings.formulation, settings.encoding, settings.obbt, settings.obbt_rounds), reference=witness)
        say(f"MILP ({settings.formulation}, {settings.encoding}): {enc.stats['n_variables']} variables, "
            f"{enc.stats['n_binaries']} binaries; bounds tightened in {enc.stats['obbt_s']:.1f} s")
        relaxation = lp_bound(enc.milp)
        remaining = max(1.0, settings.time_limit - (time.perf_counter() - started))
        warm = enc.warm if witness is not None else None
        result = solve(enc.milp, settings.backend, remaining, warm, settings.threads)
        result.upper_bound = min(result.upper_bound, relaxation)
        say(f"MILP: {result.status}, bounds [{result.lower_bound:.6g}, {result.upper_bound:.6g}] in "
            f"{result.time_s:.1f} s")
        milp_block = {"backend": result.backend, "status": result.status, "incumbent": _num(result.lower_bound),
                      "dual_bound": _num(result.upper_bound), "lp_relaxation_bound": _num(relaxation), "solve_s": round(result.time_s, 3),
                      "nodes": result.nodes, **enc.stats}
        if result.solution is not None and (pga is None or result.lower_bound > pga.gap):
            witness = result.solution[enc.x]
        milp_upper = result.upper_bound
    else:
        milp_upper = None
    if witness is None:
        witness = problem.nominal
    witness = np.clip(witness, lower, upper)        # a MILP point may sit outside by the solver's tolerance
    checked = recheck(problem, solve_fn, witness)
    claimed = max(pga.gap if pga else -np.inf, milp_block["incumbent"] if milp_block and
                  milp_block["incumbent"] is not None else -np.inf)
    scale = 1.0 + abs(checked["optimal_objective"])
    notes = list(problem.notes)
    if np.isfinite(claimed) and abs(checked["gap"] - claimed) > RECHECK_TOL * scale:
        notes.append(f"the re-checked gap {checked['gap']:.9g} differs from the search's {claimed:.9g}: the "
                     "submission's solve() and its exported graph disagree at the witness")
    lower_bound = checked["gap"]
    upper_bound = milp_upper if milp_upper is not None and np.isfinite(milp_upper) else None
    if upper_bound is not None and upper_bound < lower_bound:
        if lower_bound - upper_bound > RECHECK_TOL * scale:
            notes.append(f"the MILP's bound {upper_bound:.9g} is below the re-checked gap {lower_bound:.9g}: the "
                         "submission's solve() and its exported graph disagree; the upper bound is reported as the "
                         "re-checked gap")
        upper_bound = lower_bound          # within rounding of the float32 network: the bound is the gap
    status = "attack_only"
    if milp_block is not None:
        status = milp_block["status"]
    phi = checked["optimal_objective"]
    denom = abs(phi) if np.isfinite(phi) and phi != 0 else float("nan")
    block = {
        "lower_bound": _num(lower_bound), "upper_bound": _num(upper_bound),
        "relative_lower_bound": _num(lower_bound / denom),
        "relative_upper_bound": _num(upper_bound / denom) if upper_bound is not None else None,
        "units": problem.units, "status": status, "method": settings.method,
        "formulation": settings.formulation if milp_block else None,
        "encoding": settings.encoding if milp_block else None,
        "domain": settings.domain, "delta": settings.delta if settings.domain == "box" else None,
        "domain_lower": lower.tolist(), "domain_upper": upper.tolist(),
        "time_s": round(time.perf_counter() - started, 3), "time_limit_s": settings.time_limit,
        "n_binaries": milp_block["n_binaries"] if milp_block else None,
        "n_variables": milp_block["n_variables"] if milp_block else None,
        "witness": {"params": {problem.param: checked["params"].tolist()},
                    "proxy_solution": {problem.decision: checked["proxy_solution"].tolist()},
                    "proxy_objective": _num(checked["proxy_objective"]),
                    "optimal_objective": _num(checked["optimal_objective"])},
        "pga": None if pga is None else {"gap": _num(pga.gap), "time_s": round(pga.time_s, 3),
                                         "starts": settings.attack.starts, "steps": settings.attack.steps,
                                         "step": settings.attack.step, "seed": settings.attack.seed,
                                         "evaluations": pga.evaluations,
                                         "history": [_num(v) for v in pga.history]},
        "milp": milp_block, "graph": graph.description, "notes": notes,
    }
    return block


def _num(v):
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None
