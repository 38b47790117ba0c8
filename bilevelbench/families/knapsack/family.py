"""The ``knapsack`` family's descriptor (:class:`bilevelbench.core.family.Family`): the parametric
multi-dimensional 0/1 knapsack, ``max v . y`` s.t. ``W y <= capacity``, with the capacities as the parameter.

Everything of the family lives in this folder: the problem and its sampler (:mod:`.problem`), SCIP labels and
their checks (:mod:`.certify`), generation on the core pipeline (:mod:`.generate`), verification with the
dynamic-programming check and the HiGHS oracle (:mod:`.verify`), scoring (:mod:`.score`) and the exact solver
(:mod:`.exact`).
"""

from __future__ import annotations

from pathlib import Path

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class Knapsack(Family):
    """Parametric multi-dimensional 0/1 knapsack; labels certified by SCIP at zero gap."""

    name = "knapsack"
    title = ("parametric multi-dimensional 0/1 knapsack (random weakly correlated items, capacities per instance), "
             "labels certified by SCIP at zero gap")
    docs = "docs/families/knapsack.md"
    example = "--items 20 --constraints 2 --n-train 2000 --n-test 500 --out knapsack-20x2.h5"
    tiny_args = ("--items", "6", "--constraints", "2", "--n-train", "2", "--n-test", "4", "--seed", "1")
    decision = "y"
    param_fields = ("capacity",)
    label_fields = ("y", "objective")
    generator_version = 1
    seed_stream = 5
    options = (
        Option("items", int, 20, "number of items n", metavar="N"),
        Option("constraints", int, 2, "number of capacity constraints m", metavar="M"),
        Option("capacity_ratio", list, [0.2, 0.6], "capacity_i = U[LO, HI] * sum_j W_ij per instance and "
                                                   "constraint (0 <= LO <= HI <= 1)", metavar="LO,HI", length=2),
        Option("weight_max", int, 100, "weights W_ij ~ U{1..W}", metavar="W"),
        Option("time_limit", float, 60.0, "seconds SCIP may spend on one instance", metavar="SEC",
               run_setting=True),
    )
    leaderboard_columns = (Column("capacity_violated_rate", "over capacity"),
                           Column("non_binary_rate", "non-binary"),
                           Column("capacity_excess_mean", "capacity excess mean"))
    rank_metric = "gap_mean"
    exact_solver = "bilevelbench.families.knapsack.exact:ExactKnapsackSolver"
    oracle_method = "HiGHS MILP"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.families.knapsack.certify import KnapsackCertifierSettings
        from bilevelbench.families.knapsack.generate import KnapsackRequest, generate_knapsack

        o = request.options
        knapsack_request = KnapsackRequest(items=o["items"], constraints=o["constraints"], n_train=request.n_train,
                                           n_valid=request.n_valid, n_test=request.n_test, seed=request.seed,
                                           capacity_ratio=tuple(float(r) for r in o["capacity_ratio"]),
                                           weight_max=o["weight_max"])
        return generate_knapsack(knapsack_request, request.out, KnapsackCertifierSettings(o["time_limit"]),
                                 workers=request.workers, overwrite=request.overwrite, progress=request.progress,
                                 name=request.name, spec=request.spec, scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.knapsack.problem import sample_capacities

        ratio = ds.meta.get("sampling", {}).get("capacity_ratio", self.option("capacity_ratio").default)
        return {"capacity": sample_capacities(ds.structure, rng, n, tuple(float(r) for r in ratio))}

    def structure(self, data):
        import numpy as np

        from bilevelbench.families.knapsack.problem import KnapsackStructure

        return KnapsackStructure(weight=np.asarray(data.structure["weight"]),
                                 value=np.asarray(data.structure["value"], dtype=float))

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.n_items, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [(f"size            {s.size}: {s.n_items} items, {s.n_constraints} capacity constraints, weights "
                f"{int(s.weight.min())}..{int(s.weight.max())}")]

    def label_checker(self, ds):
        from bilevelbench.families.knapsack.verify import label_checker

        return label_checker(ds)

    def oracle_checker(self, ds):
        from bilevelbench.families.knapsack.verify import oracle_checker

        return oracle_checker(ds)

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.knapsack.score import score_knapsack

        return score_knapsack(ds.structure, answers.params, answers.labels, answers.y, answers.answered,
                              answers.reasons, progress)

    def verification_problem(self, ds):
        from bilevelbench.families.knapsack.verification import verification_problem

        return verification_problem(ds)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        from bilevelbench.families.knapsack.score import headline_metrics

        return headline_metrics(score, aggregates)

    def summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.families.knapsack.score import summary_lines

        return summary_lines(metrics)


FAMILY = Knapsack()
