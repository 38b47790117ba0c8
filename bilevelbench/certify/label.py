"""A certified label: the solution, how it was obtained, and the checks it passed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.certify.checks import CHECK_FIELDS

#: ``certified_optimal``: exact solve to the gap tolerance and every check passed.
#: ``best_known``: a bilevel-feasible point without an optimality proof (``reason`` says why).
#: ``infeasible``: the instance has no bilevel-feasible point (proven).
#: ``failed``: no trustworthy point; ``reason`` says why.
#: ``unlabeled``: not attempted (e.g. the train split with ``--no-label-train``).
STATUSES = ("certified_optimal", "best_known", "infeasible", "failed", "unlabeled")
#: Statuses whose label stores a (checked, bilevel-feasible) solution.
SOLUTION_STATUSES = ("certified_optimal", "best_known")


@dataclass
class Label:
    """Label of one BQP instance with its certificate."""

    y: np.ndarray
    z: np.ndarray
    lam: np.ndarray
    objective: float
    status: str
    reason: str
    backend: str
    primal_bound: float
    dual_bound: float
    solve_time: float
    nodes: int
    checks: dict[str, float]
    bounds_radius: float = float("nan")

    @classmethod
    def empty(cls, m: int, n: int, p: int, status: str, reason: str, backend: str = "") -> Label:
        nan = np.full
        return cls(nan(m, np.nan), nan(n, np.nan), nan(p, np.nan), np.nan, status, reason, backend,
                   np.inf, -np.inf, 0.0, 0, dict.fromkeys(CHECK_FIELDS, np.nan))
