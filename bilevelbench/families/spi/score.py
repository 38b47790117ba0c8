"""Score ``spi-grid`` answers: the follower re-solved by the evaluator at the submitted interdiction.

A submission returns ``interdiction`` (B, k*k), row-major. Entries within 1e-6 of 0 or 1 are rounded; an answer
is **infeasible** when an entry is not binary, more than ``budget`` tiles are interdicted, or the start or the
target tile is. For every scored answer the evaluator re-solves the follower (Dijkstra on
``costs + interdiction_cost * x``); a submitted path is never read. Per instance:

* ``objective``: the follower's shortest-path cost at the submitted interdiction;
* ``regret = (f* - f(x)) / f*`` against the certified optimum ``f*`` (the leader maximises): the user's measure;
  it is the family's ``gap`` (feasible answers only);
* the paper's accuracies: ``interdiction_hamming`` (tiles where ``x`` differs from the label, divided by k*k)
  and ``interdiction_l1`` (sum of ``|x - x*|`` before rounding), ``path_hamming`` between the follower's path at
  ``x`` and the label's path.
"""

from __future__ import annotations

import numpy as np

from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.spi import grid
from bilevelbench.families.spi.problem import SPIStructure

BINARY_TOL = 1e-6
FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "interdiction_hamming",
                "interdiction_l1", "path_hamming", "over_budget", "non_binary")


def measures(s: SPIStructure, x: np.ndarray, costs: np.ndarray, d: np.ndarray, label_x: np.ndarray,
             label_path: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-instance measures and feasibility of answers ``x`` (B, k*k)."""
    k = int(s.k)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    rounded = np.round(x)
    binary = np.all((np.abs(x - rounded) <= BINARY_TOL) & ((rounded == 0) | (rounded == 1)), axis=1)
    point = np.where(binary[:, None], rounded, np.clip(x, 0, None))
    over = np.maximum(0.0, point.sum(1) - s.budget)
    ends = (point[:, 0] > 0) | (point[:, -1] > 0)
    feasible = binary & (over == 0) & ~ends
    value = np.full(len(x), np.nan)
    path_hamming = np.full(len(x), np.nan)
    for i in range(len(x)):
        v, path = grid.shortest_path(costs[i] + d[i] * point[i].reshape(k, k))
        value[i] = v
        if np.all(np.isfinite(label_path[i])):
            path_hamming[i] = float(np.mean(path.reshape(-1) != label_path[i]))
    out = {"objective": value, "interdiction_hamming": np.mean(rounded != np.nan_to_num(label_x), axis=1),
           "interdiction_l1": np.abs(x - np.nan_to_num(label_x)).sum(1), "path_hamming": path_hamming,
           "over_budget": over, "non_binary": (~binary).astype(float)}
    return out, feasible


def score_spi(ds, answers, progress=None) -> SplitScore:
    s = ds.structure
    costs = np.asarray(answers.params["costs"], float)
    d = np.asarray(answers.params["interdiction_cost"], float)
    y = answers.y
    label_x, label_path = answers.labels["interdiction"], answers.labels["path"]

    def measure(rows: np.ndarray, reference: np.ndarray):
        return measures(s, y[rows], costs[rows], d[rows], label_x[rows], label_path[rows])

    # the leader maximises: signed_gap = regret = (f* - f) / f*
    score = score_rows(y, answers.answered, answers.reasons, answers.labels, FLOAT_FIELDS, measure,
                       name="interdiction", progress=progress, sense="max")
    v = score.values
    v["gap"] = np.where(score.scored & score.feasible, v["signed_gap"], np.nan)
    return score
