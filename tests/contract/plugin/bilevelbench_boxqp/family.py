"""The ``boxqp`` family's descriptor: everything bilevelbench's generic layers need, and nothing else."""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import Column, Family, Option
from bilevelbench.errors import OracleUnavailableError


class BoxQP(Family):
    name = "boxqp"
    title = "separable box-constrained QP (a tiny third-party family for the contract tests)"
    docs = "tests/contract/plugin/bilevelbench_boxqp/problem.py"
    example = "--k 4 --n-test 10 --out boxqp.h5"
    tiny_args = ("--k", "3", "--n-train", "4", "--n-valid", "2", "--n-test", "6", "--seed", "3")
    decision = "x"
    param_fields = ("p",)
    label_fields = ("x", "objective")
    generator_version = 1
    seed_stream = 11
    options = (Option("k", int, 3, "number of variables", metavar="K"),
               Option("oracle", bool, True, "whether verify --oracle may re-solve the labels (false: the oracle is "
                                            "refused, to test that path)"))
    leaderboard_columns = (Column("box_violation_mean", "box violation mean"),)
    exact_solver = "bilevelbench_boxqp.exact:ClosedForm"
    oracle_method = "L-BFGS-B (scipy), never the closed form"

    def generate(self, request):
        from bilevelbench_boxqp.generate import generate

        return generate(request)

    def sample(self, ds, rng, n):
        return {"p": rng.normal(size=(n, ds.structure.k))}

    def structure(self, data):
        from bilevelbench_boxqp.problem import KEYS, BoxQPStructure

        return BoxQPStructure(**{key: np.asarray(data.structure[key], float) for key in KEYS})

    def decision_dims(self, structure):
        return structure.k, 0

    def label_checker(self, ds):
        from bilevelbench_boxqp import problem

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            if status != "certified_optimal":
                return [] if not np.any(np.isfinite(labels["x"][pos])) else ["a failed label stores a point"]
            x, p = labels["x"][pos], params["p"][pos]
            problems = []
            if problem.kkt_residual(s, x, p)[0] > 1e-9:
                problems.append("KKT residual above 1e-9")
            if abs(problem.objective(s, x, p)[0] - labels["objective"][pos]) > 1e-12:
                problems.append("stored objective differs from f(x)")
            return problems

        return check

    def oracle_checker(self, ds):
        if not ds.meta.get("sampling", {}).get("oracle", True):
            raise OracleUnavailableError("this boxqp file was generated with --no-oracle")
        from scipy.optimize import minimize

        from bilevelbench_boxqp import problem

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            p = params["p"][pos]
            res = minimize(lambda x: problem.objective(s, x, p)[0], np.zeros(s.k), jac=lambda x: s.D * x - p,
                           bounds=list(zip(s.lo, s.hi)), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
            if abs(res.fun - labels["objective"][pos]) > 1e-8 * max(1.0, abs(res.fun)):
                return [f"L-BFGS-B finds {res.fun:.12g}, the label says {labels['objective'][pos]:.12g}"]
            return []

        return check

    def score(self, ds, answers, progress=None):
        from bilevelbench.evaluate import metrics
        from bilevelbench.evaluate.scoring import score_rows
        from bilevelbench_boxqp import problem

        s, p, x = ds.structure, answers.params["p"], answers.y

        def measure(rows, reference):
            box = problem.box_violation(s, x[rows])
            return {"objective": problem.objective(s, x[rows], p[rows]), "box_violation": box}, \
                box <= metrics.FEASIBILITY_TOL

        return score_rows(x, answers.answered, answers.reasons, answers.labels,
                          ("objective", "reference_objective", "gap", "signed_gap", "box_violation"), measure,
                          name="x", progress=progress)

    def headline_metrics(self, score, aggregates):
        return {"box_violation_mean": aggregates["box_violation"]["mean"]}

    def summary_lines(self, metrics):
        return [f"  box        violation mean {metrics.get('box_violation_mean')}"]


FAMILY = BoxQP()
