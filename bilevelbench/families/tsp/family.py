"""The ``tsp-interdiction`` family's descriptor: the leader removes edges to lengthen the salesman's shortest tour
(BiGrad's TSP task; see :mod:`.tour` for the problem and the exact methods, :mod:`.problem` for the city set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class TSPInterdiction(Family):
    """Leader removes up to B edges to maximise the shortest tour; labels exact (search + Held-Karp, MILP check)."""

    name = "tsp-interdiction"
    title = ("TSP with edge interdiction on k cities drawn from a fixed set of 100 (BiGrad's TSP task), exact "
             "labels by a tour-edge search with Held-Karp, re-checked by a MILP")
    docs = "docs/families/tsp-interdiction.md"
    example = "--size 10 --budget 1 --n-train 1000 --n-test 200 --out tsp-10.h5"
    tiny_args = ("--size", "5", "--budget", "1", "--n-train", "2", "--n-test", "3", "--seed", "1")
    decision = "removed"
    param_fields = ("cities", "distances")
    label_fields = ("removed", "tour", "objective")
    generator_version = 1
    seed_stream = 14
    options = (Option("size", int, 10, "cities per instance k (the paper: 8, 10, 12; at most 16)", metavar="K"),
               Option("budget", int, 1, "edges the leader may remove (the paper: 1; at most k - 3)", metavar="B"),
               Option("time_limit", float, 60.0, "seconds the MILP re-check may spend on one label", metavar="SEC",
                      run_setting=True))
    leaderboard_columns = (Column("removed_hamming_mean", "removal Hamming"),
                           Column("tour_hamming_mean", "tour Hamming"))
    exact_solver = "bilevelbench.families.tsp.exact:ExactTSPSolver"
    oracle_method = "enumeration of every removal set (Held-Karp at each), not the tour-edge search"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.families.tsp.generate import TSPRequest, generate_tsp

        o = request.options
        tsp = TSPRequest(size=o["size"], budget=o["budget"], n_train=request.n_train, n_valid=request.n_valid,
                         n_test=request.n_test, seed=request.seed, time_limit=o["time_limit"])
        return generate_tsp(tsp, request.out, workers=request.workers, overwrite=request.overwrite,
                            progress=request.progress, name=request.name, spec=request.spec,
                            scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.tsp.problem import sample_instances

        return sample_instances(ds.structure, rng, n)

    def structure(self, data):
        from bilevelbench.families.tsp.problem import structure_from_arrays

        return structure_from_arrays(data.structure)

    def decision_dims(self, structure) -> tuple[int, int]:
        return int(structure.k) ** 2, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.k} cities of {s.city_xy.shape[0]}, budget {s.budget} removed edge(s)"]

    def label_checker(self, ds):
        from bilevelbench.families.tsp import tour

        s, params, labels = ds.structure, ds.params, ds.labels
        k = int(s.k)

        def check(pos, status):
            x = labels["removed"][pos]
            if status != "certified_optimal":
                return [] if not np.any(np.isfinite(x)) else ["a label that is not certified stores a solution"]
            problems = []
            x = x.reshape(k, k)
            if (np.any((x != 0) & (x != 1)) or not np.array_equal(x, x.T) or np.any(np.diag(x))
                    or np.triu(x, 1).sum() > s.budget):
                problems.append("the removal is not a symmetric 0/1 matrix within the budget")
            d = tour.blocked(params["distances"][pos], x)
            value, _ = tour.tsp_milp(d)
            if abs(value - labels["objective"][pos]) > 1e-9 * max(1.0, abs(value)):
                problems.append(f"the MILP finds a tour of {value:.12g} at the removal, the label says "
                                f"{labels['objective'][pos]:.12g}")
            stored = labels["tour"][pos]
            if not tour.is_tour(stored, k):
                problems.append("the stored tour does not visit every city once")
            elif abs(tour.tour_length(d, stored.astype(np.int64)) - value) > 1e-9 * max(1.0, abs(value)):
                problems.append(f"the stored tour has length {tour.tour_length(d, stored.astype(np.int64)):.12g}, "
                                f"not the shortest {value:.12g} (or it uses a removed edge)")
            return problems

        return check

    def oracle_checker(self, ds):
        from bilevelbench.families.tsp import tour

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            if status != "certified_optimal":
                return []
            res = tour.interdict_enumerate(params["distances"][pos], s.budget)
            if abs(res.objective - labels["objective"][pos]) > 1e-9 * max(1.0, abs(res.objective)):
                return [f"enumerating every removal finds {res.objective:.12g}, the label says "
                        f"{labels['objective'][pos]:.12g}"]
            return []

        return check

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.tsp.score import score_tsp

        return score_tsp(ds, answers, progress)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        return {"removed_hamming_mean": aggregates["removed_hamming"]["mean"],
                "removed_l1_mean": aggregates["removed_l1"]["mean"],
                "tour_hamming_mean": aggregates["tour_hamming"]["mean"],
                "regret_mean": aggregates["gap"]["mean"]}

    def summary_lines(self, metrics: dict) -> list[str]:
        def f(key):
            v = metrics.get(key)
            return "—" if v is None else f"{v:.3e}"

        return [f"  regret     mean {f('regret_mean')} (the follower re-solved at the submitted removal)",
                f"  accuracy   removal Hamming {f('removed_hamming_mean')}, l1 {f('removed_l1_mean')}; "
                f"tour Hamming {f('tour_hamming_mean')}"]


FAMILY = TSPInterdiction()
