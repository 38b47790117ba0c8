"""Score ``adv-control`` answers: the adversary re-solved by the evaluator at the submitted controls.

A submission returns ``u`` (B, T n_u), the controls over the horizon. An answer is **infeasible** when an entry
exceeds ``u_max`` by more than :data:`BOUND_TOL`; it is then priced at its controls clipped to the bounds (and
counted infeasible). A submitted adversary answer is never read: for every scored answer the evaluator re-solves
the adversary's QP (:func:`~.problem.follower_response`) and prices the controls at that answer. Per instance:

* ``objective``: the leader's cost ``J(U, W*(U))``;
* ``gap = (J - J*) / J*`` against the certified optimum ``J*`` (BiGrad's Table 1 reports the average cost; so does
  the leaderboard, as ``objective_mean``);
* ``u_violation``: the largest excess over ``u_max`` (0 when feasible);
* ``u_distance`` and ``w_distance``: root-mean-square distances from the label's controls and from the
  adversary's answer to them.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.advctl import problem

BOUND_TOL = 1e-6
FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "u_violation", "u_distance",
                "w_distance")


def measures(s, U: np.ndarray, x0: np.ndarray, target: np.ndarray, label_u: np.ndarray,
             label_w: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-instance measures and feasibility of answers ``U`` (B, T n_u)."""
    U = np.atleast_2d(np.asarray(U, dtype=np.float64))
    violation = np.maximum(0.0, np.abs(U).max(axis=1) - s.u_max) if U.shape[1] else np.zeros(len(U))
    clipped = np.clip(U, -s.u_max, s.u_max)
    cost, W = problem.true_cost(s, x0, target, clipped)
    rms = lambda a, b: np.sqrt(np.mean((a - b) ** 2, axis=1))
    out = {"objective": cost, "u_violation": violation, "u_distance": rms(U, label_u), "w_distance": rms(W, label_w)}
    return out, violation <= BOUND_TOL


def score_adv(ds, answers, progress=None) -> SplitScore:
    s = ds.structure
    x0 = np.asarray(answers.params["x0"], float)
    target = np.asarray(answers.params["target"], float)
    y = answers.y
    label_u, label_w = answers.labels["u"], answers.labels["w"]

    def measure(rows: np.ndarray, reference: np.ndarray):
        return measures(s, y[rows], x0[rows], target[rows], label_u[rows], label_w[rows])

    score = score_rows(y, answers.answered, answers.reasons, answers.labels, FLOAT_FIELDS, measure, name="u",
                       progress=progress, chunk=256)
    v = score.values
    v["gap"] = np.where(score.scored & score.feasible, v["signed_gap"], np.nan)
    return score
