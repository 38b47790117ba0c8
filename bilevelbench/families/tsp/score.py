"""Score ``tsp-interdiction`` answers: the follower re-solved by the evaluator at the submitted removal.

A submission returns ``removed`` (B, k*k), a row-major symmetric 0/1 matrix of the edges it removes. Entries
within 1e-6 of 0 or 1 are rounded; an answer is **infeasible** when an entry is not binary, the matrix is not
symmetric, its diagonal is not zero, or more than ``budget`` edges are removed. For every scored answer the
evaluator re-solves the follower (Held-Karp at the distances with the removed edges missing; for an infeasible
answer, the edges whose upper-triangle entry exceeds 0.5); a submitted tour is never read. Per instance:

* ``objective``: the salesman's shortest tour at the submitted removal;
* ``regret = (f* - f(x)) / f*`` against the certified optimum ``f*`` (the leader maximises): the user's measure;
  it is the family's ``gap`` (feasible answers only);
* the paper's accuracies: ``removed_hamming`` (edges where the rounded answer differs from the label, over the
  k(k-1)/2 edges), ``removed_l1`` (sum of ``|x - x*|`` over the edges, before rounding), and ``tour_hamming``
  (edges on which the follower's tour at the answer and the label's tour differ, over the k(k-1)/2 edges).
"""

from __future__ import annotations

import numpy as np

from bilevelbench.evaluate.scoring import SplitScore, score_rows
from bilevelbench.families.tsp import tour
from bilevelbench.families.tsp.problem import TSPStructure

BINARY_TOL = 1e-6
FLOAT_FIELDS = ("objective", "reference_objective", "gap", "signed_gap", "removed_hamming", "removed_l1",
                "tour_hamming", "over_budget", "non_binary", "asymmetric")


def measures(s: TSPStructure, x: np.ndarray, distances: np.ndarray, label_x: np.ndarray,
             label_tour: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-instance measures and feasibility of answers ``x`` (B, k*k)."""
    k = int(s.k)
    iu, ju = np.triu_indices(k, 1)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64)).reshape(-1, k, k)
    rounded = np.round(x)
    binary = np.all((np.abs(x - rounded) <= BINARY_TOL) & ((rounded == 0) | (rounded == 1)), axis=(1, 2))
    symmetric = np.all(np.abs(x - x.transpose(0, 2, 1)) <= BINARY_TOL, axis=(1, 2))
    diagonal = np.all(np.abs(np.diagonal(x, axis1=1, axis2=2)) <= BINARY_TOL, axis=1)
    upper = x[:, iu, ju]
    chosen = upper > 0.5
    over = np.maximum(0.0, chosen.sum(1) - s.budget)
    feasible = binary & symmetric & diagonal & (over == 0)
    label_upper = np.asarray(label_x, float).reshape(-1, k, k)[:, iu, ju]
    value = np.full(len(x), np.nan)
    tour_hamming = np.full(len(x), np.nan)
    for i in range(len(x)):
        removed = np.zeros((k, k))
        removed[iu[chosen[i]], ju[chosen[i]]] = 1.0
        length, order = tour.held_karp(tour.blocked(distances[i], removed + removed.T))
        if not np.isfinite(length):
            continue                                 # so many edges removed that no tour is left
        value[i] = length
        if tour.is_tour(label_tour[i], k):
            mine = tour.tour_edges(order, k)[iu, ju]
            theirs = tour.tour_edges(label_tour[i].astype(np.int64), k)[iu, ju]
            tour_hamming[i] = float(np.mean(mine != theirs))
    out = {"objective": value, "removed_hamming": np.mean(chosen != (np.nan_to_num(label_upper) > 0.5), axis=1),
           "removed_l1": np.abs(upper - np.nan_to_num(label_upper)).sum(1), "tour_hamming": tour_hamming,
           "over_budget": over, "non_binary": (~binary).astype(float), "asymmetric": (~symmetric).astype(float)}
    return out, feasible & np.isfinite(value)


def score_tsp(ds, answers, progress=None) -> SplitScore:
    s = ds.structure
    distances = np.asarray(answers.params["distances"], float)
    y = answers.y
    label_x, label_tour = answers.labels["removed"], answers.labels["tour"]

    def measure(rows: np.ndarray, reference: np.ndarray):
        return measures(s, y[rows], distances[rows], label_x[rows], label_tour[rows])

    # the leader maximises: signed_gap = regret = (f* - f) / f*
    score = score_rows(y, answers.answered, answers.reasons, answers.labels, FLOAT_FIELDS, measure,
                       name="removed", progress=progress, sense="max")
    v = score.values
    v["gap"] = np.where(score.scored & score.feasible, v["signed_gap"], np.nan)
    return score
