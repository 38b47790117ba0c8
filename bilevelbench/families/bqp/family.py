"""The ``bqp`` family's descriptor: what the generic layers call (:class:`bilevelbench.core.family.Family`).

Everything of the family lives in this folder: the problem (:mod:`.problem`), its certified labels (KKT-MIP with
provably valid bounds: :mod:`.bounds`, :mod:`.backends`, :mod:`.certifier`, :mod:`.checks`), generation
(:mod:`.generate`), verification and the enumeration oracle (:mod:`.verify`, :mod:`.enumeration`), scoring
(:mod:`.score`) and the exact reference solver (:mod:`.exact`). Importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class BQP(Family):
    """Bilevel quadratic programs of Kotary et al. (eqs. 11-12), labels certified through a SOS1 KKT-MIP."""

    name = "bqp"
    title = "bilevel quadratic program (Kotary et al., eqs. 11-12): leader y, follower z, certified KKT-MIP labels"
    docs = "docs/families/bqp.md"
    example = "--size 3x2 --n-test 60 --seed 7 --out bqp-3x2.h5"
    tiny_args = ("--size", "3x2", "--n-train", "2", "--n-valid", "1", "--n-test", "3", "--seed", "5")
    decision = "y"
    follower = "z"
    param_fields = ("c", "d")
    label_fields = ("y", "z", "objective")
    generator_version = "2"
    seed_stream = 1
    options = (
        Option("size", str, None, "M upper-level and N lower-level variables, e.g. 3x2, 6x4, 9x6, 12x9, 20x15",
               metavar="MxN", required=True),
        Option("label_train", bool, True, "certify the train split too (default); --no-label-train stores it "
                                          "unlabeled, enough for self-supervised methods"),
        Option("upper_constraints", int, None, "rows of A (default round(5M/3): 15 for 9x6 as in the authors' code)",
               metavar="K"),
        Option("lower_constraints", int, None, "rows of F (default ceil(5N/6): 5 for 9x6 as in the authors' code)",
               metavar="K"),
        Option("lower_ridge", float, 0.1, "H = S S' + R I makes the follower's response unique",
               metavar="R"),
        Option("backend", str, "scip", "exact solver: scip (bundled), gurobi (needs a license that takes the "
                                       "model), auto (gurobi when it can, else scip)",
               choices=("scip", "gurobi", "auto"), run_setting=True),
        Option("time_limit", float, 120.0, "seconds per instance; an unfinished solve is stored as best_known "
                                           "with its gap", metavar="SEC", run_setting=True),
    )
    leaderboard_columns = (Column("coupling_violation_mean", "coupling violation mean"),)
    exact_solver = "bilevelbench.families.bqp.exact:ExactBQPSolver"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.errors import UsageError
        from bilevelbench.families.bqp.certifier import CertifierSettings
        from bilevelbench.families.bqp.generate import BQPRequest, generate_bqp
        from bilevelbench.families.bqp.problem import parse_size

        o = request.options
        if not o["time_limit"] > 0:
            raise UsageError(f"--time-limit must be positive, got {o['time_limit']}")
        m, n = parse_size(o["size"])
        bqp_request = BQPRequest(m=m, n=n, n_train=request.n_train, n_valid=request.n_valid, n_test=request.n_test,
                                 seed=request.seed, label_train=o["label_train"],
                                 n_upper_constraints=o["upper_constraints"], n_lower_constraints=o["lower_constraints"],
                                 lower_ridge=o["lower_ridge"])
        settings = CertifierSettings(backend=o["backend"], time_limit=o["time_limit"])
        return generate_bqp(bqp_request, request.out, settings, workers=request.workers, overwrite=request.overwrite,
                            progress=request.progress, name=request.name, spec=request.spec,
                            scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.bqp.problem import sample_params

        return sample_params(rng, ds.structure, n)

    def structure(self, data):
        from bilevelbench.families.bqp.problem import STRUCTURE_KEYS, BQPStructure

        return BQPStructure(**{key: data.structure[key] for key in STRUCTURE_KEYS})

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.m, structure.n

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.size}: {s.m} upper / {s.n} lower variables, {s.n_upper_constraints} upper / "
                f"{s.n_lower_constraints} lower constraints"]

    def label_checker(self, ds):
        from bilevelbench.families.bqp.verify import label_checker

        return label_checker(ds)

    def oracle_checker(self, ds):
        from bilevelbench.families.bqp.verify import oracle_checker

        return oracle_checker(ds)

    oracle_method = "active-set enumeration of the lower level (exact, no MIP)"

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.evaluate.scoring import paper_offset
        from bilevelbench.families.bqp.score import score_bqp

        return score_bqp(ds.structure, answers.params, answers.labels, answers.y, answers.answered, answers.reasons,
                         answers.z, paper_offset(ds.meta), progress)

    def summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.evaluate.summary import fmt

        return [f"  coupling   ||ReLU(Ay-b-Ez)||_2 mean {fmt(metrics.get('coupling_violation_mean'))}  "
                f"max-row max {fmt(metrics.get('coupling_violation_max'))}"]


FAMILY = BQP()
