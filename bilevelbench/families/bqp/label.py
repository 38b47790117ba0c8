"""A certified label of one bilevel QP instance: the solution, how it was obtained, and the checks it passed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.families.bqp.checks import CHECK_FIELDS


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
