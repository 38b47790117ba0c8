"""The ``knapsack`` family's problem for worst-case verification of proxies (``bilevelbench verify-proxy``).

Parameter ``x = capacity`` (m,). The follower is the instance itself, an integer program::

    max  v . y    s.t.  W y <= capacity,   y in {0, 1}^n

so only the compact formulation applies (the KKT one needs an LP follower), and the attack's gradient of
``Phi`` comes from the LP relaxation (the value-function approximation of :mod:`bilevelbench.verification.value`).
An answer earns ``v . y``; the gap is ``Phi(capacity) - v . y``. The proxy's feasibility layer (the greedy
repair) makes every answer feasible, and the re-check says so when a submission's is not.

The nominal capacities are the mean of the train split's. The witness is re-checked with SCIP (the label
code, :func:`~bilevelbench.families.knapsack.certify.solve_scip`), not with the HiGHS model the attack uses.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bilevelbench.verification.problem import AnswerObjective, ParametricProgram, VerificationProblem

#: Seconds SCIP may spend re-solving the witness.
RECHECK_TIME_LIMIT = 60.0


def verification_problem(ds) -> VerificationProblem:
    """The :class:`VerificationProblem` of a knapsack instance set (its structure and train split)."""
    from bilevelbench.families.knapsack.certify import solve_scip
    from bilevelbench.families.knapsack.problem import objective
    from bilevelbench.families.knapsack.score import measures

    s = ds.structure
    m, n = s.n_constraints, s.n_items
    W = s.weight.astype(np.float64)
    program = ParametricProgram("max", s.value, 0.0, W, np.full(m, -np.inf), np.zeros(m), sp.identity(m),
                                y_lower=np.zeros(n), y_upper=np.ones(n), integer=np.ones(n, bool),
                                names={"y": (0, n)})
    answer = AnswerObjective(s.value, 0.0, np.zeros((0, n)), np.zeros((0, m)), np.zeros(0), np.zeros(0))
    train = ds.split("train") if "train" in ds.split_names else None
    train_c = np.asarray(train.params["capacity"], float) if train is not None and len(train) else np.zeros((0, m))
    nominal = train_c.mean(0) if train_c.size else W.sum(1) * 0.4

    def answer_value(capacity: np.ndarray, y: np.ndarray) -> np.ndarray:
        return objective(s, y)

    def answer_feasible(capacity: np.ndarray, y: np.ndarray) -> np.ndarray:
        m = measures(s, y, np.atleast_2d(capacity))                       # the evaluator's own test
        return (m["non_binary"] == 0) & (m["capacity_excess"] == 0)

    def exact_optimum(capacity: np.ndarray) -> np.ndarray:
        out = []
        for row in np.atleast_2d(capacity):
            label = solve_scip(s, row, RECHECK_TIME_LIMIT)
            out.append(label.objective if label.status == "certified_optimal" else np.nan)
        return np.asarray(out, float)

    return VerificationProblem(
        param="capacity", decision="y", program=program, answer=answer, decision_columns=np.arange(n),
        nominal=nominal, train_params=train_c, units="value", answer_value=answer_value,
        exact_optimum=exact_optimum, answer_feasible=answer_feasible,
        notes=[f"{n} items, {m} constraints; nominal capacities: the mean of the train split's",
               ("integer follower: compact formulation only; the attack's gradient of Phi is the LP relaxation's "
                "(VFA)")])
