"""The ``spi-grid`` family's descriptor: shortest path with interdiction on k x k terrain maps (BiGrad's Warcraft
task; see :mod:`.grid` for the problem and both exact methods, :mod:`.terrain` for how maps differ from Warcraft's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class SPIGrid(Family):
    """Leader interdicts up to B tiles to maximise the follower's cheapest path; labels exact (SCIP MILP)."""

    name = "spi-grid"
    title = ("shortest path with interdiction on k x k terrain maps with images (BiGrad's Warcraft task), exact "
             "labels by a MILP, re-checked by Dijkstra")
    docs = "docs/families/spi-grid.md"
    example = "--size 12 --budget 3 --n-train 1000 --n-test 200 --out spi-12.h5"
    tiny_args = ("--size", "5", "--budget", "2", "--n-train", "2", "--n-test", "3", "--seed", "1")
    decision = "interdiction"
    param_fields = ("costs", "interdiction_cost", "image")
    label_fields = ("interdiction", "path", "objective")
    generator_version = 1
    seed_stream = 13
    options = (Option("size", int, 12, "grid side k (the paper: 12, 18, 24)", metavar="K"),
               Option("budget", int, 3, "interdictions allowed (the paper: 3)", metavar="B"),
               Option("interdiction_cost", float, 1.0, "cost an interdiction adds to a tile", metavar="D"),
               Option("time_limit", float, 600.0, "seconds SCIP may spend on one label", metavar="SEC",
                      run_setting=True))
    leaderboard_columns = (Column("interdiction_hamming_mean", "interdiction Hamming"),
                           Column("path_hamming_mean", "path Hamming"))
    exact_solver = "bilevelbench.families.spi.exact:ExactSPISolver"
    oracle_method = "a depth-B search over the tiles of the current shortest path (Dijkstra), not the MILP"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.families.spi.generate import SPIRequest, generate_spi

        o = request.options
        spi = SPIRequest(size=o["size"], budget=o["budget"], interdiction_cost=o["interdiction_cost"],
                         n_train=request.n_train, n_valid=request.n_valid, n_test=request.n_test, seed=request.seed,
                         time_limit=o["time_limit"])
        return generate_spi(spi, request.out, workers=request.workers, overwrite=request.overwrite,
                            progress=request.progress, name=request.name, spec=request.spec,
                            scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.spi.problem import sample_instances

        maps = sample_instances(ds.structure, rng, n)
        return {key: maps[key] for key in self.param_fields}

    def structure(self, data):
        from bilevelbench.families.spi.problem import structure_from_arrays

        return structure_from_arrays(data.structure)

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.n_tiles, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.k} x {s.k} tiles, budget {s.budget}, interdiction adds {s.interdiction:g}"]

    def label_checker(self, ds):
        from bilevelbench.families.spi import grid

        s, params, labels = ds.structure, ds.params, ds.labels
        k = int(s.k)

        def check(pos, status):
            x = labels["interdiction"][pos]
            if status != "certified_optimal":
                return [] if not np.any(np.isfinite(x)) else ["a label that is not certified stores a solution"]
            problems = []
            x = x.reshape(k, k)
            if np.any((x != 0) & (x != 1)) or x.sum() > s.budget or x[0, 0] or x[-1, -1]:
                problems.append("the interdiction is not 0/1, exceeds the budget or touches the start or target")
            value, _ = grid.shortest_path(grid.interdicted(params["costs"][pos], params["interdiction_cost"][pos],
                                                           x))
            if abs(value - labels["objective"][pos]) > 1e-9 * max(1.0, abs(value)):
                problems.append(f"Dijkstra at the interdiction costs {value:.12g}, the label says "
                                f"{labels['objective'][pos]:.12g}")
            stored = labels["path"][pos].reshape(k, k)
            path_cost = float(np.sum(stored * grid.interdicted(params["costs"][pos],
                                                               params["interdiction_cost"][pos], x)))
            if abs(path_cost - value) > 1e-9 * max(1.0, abs(value)):
                problems.append(f"the stored path costs {path_cost:.12g}, not the shortest {value:.12g}")
            return problems

        return check

    def oracle_checker(self, ds):
        from bilevelbench.families.spi import grid

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            if status != "certified_optimal":
                return []
            res = grid.interdict_search(params["costs"][pos], params["interdiction_cost"][pos], s.budget)
            if abs(res.objective - labels["objective"][pos]) > 1e-9 * max(1.0, abs(res.objective)):
                return [f"the path-hitting search finds {res.objective:.12g}, the label says "
                        f"{labels['objective'][pos]:.12g}"]
            return []

        return check

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.spi.score import score_spi

        return score_spi(ds, answers, progress)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        return {"interdiction_hamming_mean": aggregates["interdiction_hamming"]["mean"],
                "interdiction_l1_mean": aggregates["interdiction_l1"]["mean"],
                "path_hamming_mean": aggregates["path_hamming"]["mean"],
                "regret_mean": aggregates["gap"]["mean"]}

    def summary_lines(self, metrics: dict) -> list[str]:
        def f(key):
            v = metrics.get(key)
            return "—" if v is None else f"{v:.3e}"

        return [f"  regret     mean {f('regret_mean')} (the follower re-solved at the submitted interdiction)",
                f"  accuracy   interdiction Hamming {f('interdiction_hamming_mean')}, l1 "
                f"{f('interdiction_l1_mean')}; path Hamming {f('path_hamming_mean')}"]


FAMILY = SPIGrid()
