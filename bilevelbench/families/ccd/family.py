"""The control co-design families ``ccd-twotank`` and ``ccd-hvac`` (Kotary et al.): their descriptors
(:class:`bilevelbench.core.family.Family`).

Everything of these families lives in this folder: the two problems (:mod:`.twotank`, :mod:`.hvac`, with psl's
building model in :mod:`.psl`), the best-known search (:mod:`.best_known`), generation (:mod:`.generate`),
verification (:mod:`.verify`), scoring (:mod:`.score`), the reference solver (:mod:`.exact`) and the
differentiable lower levels (:mod:`.layers`). Labels are best-known, never certified.
"""

from __future__ import annotations

from pathlib import Path

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option
from bilevelbench.errors import OracleUnavailableError


class CCD(Family):
    """One of the two control co-design families; both share this descriptor."""

    decision = "design"
    label_fields = ("design", "objective")
    seed_stream = 3
    options = (
        Option("label_splits", list, ["test"], "splits that get best-known labels (they are costly; the others are "
                                               "stored unlabeled for self-supervised methods)",
               metavar="SPLIT[,SPLIT]", item=str, choices=("train", "valid", "test")),
        Option("backend", str, "search", "labels come from the best-known search (docs/families/ccd.md)",
               choices=("search",), run_setting=True),
    )
    leaderboard_columns = (Column("objective_gap", "objective gap vs best-known"),
                           Column("objective_mean", "penalised objective mean"),
                           Column("cost_mean", "cost mean"),
                           Column("violation_mean", "coupling violation mean"))
    rank_metric = "objective_gap"
    exact_solver = "bilevelbench.families.ccd.exact:BestKnownSearchSolver"

    def __init__(self, name: str, title: str, param_fields: tuple[str, ...], generator_version: int) -> None:
        self.name = name
        self.title = title
        self.param_fields = param_fields
        self.generator_version = generator_version
        self.docs = "docs/families/ccd.md"
        self.example = f"--n-train 100 --n-test 5 --out {name}.h5"
        self.tiny_args = ("--n-train", "2", "--n-test", "1", "--seed", "1")

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.families.ccd.generate import CCDRequest, generate_ccd

        ccd_request = CCDRequest(family=self.name, n_train=request.n_train, n_valid=request.n_valid,
                                 n_test=request.n_test, seed=request.seed,
                                 label_splits=tuple(request.options["label_splits"]))
        return generate_ccd(ccd_request, request.out, workers=request.workers, overwrite=request.overwrite,
                            progress=request.progress, name=request.name, spec=request.spec,
                            scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.ccd import hvac, twotank

        if self.name == twotank.FAMILY:
            return {"p": twotank.sample_targets(rng, n)}
        return hvac.sample_instances(ds.structure, rng, n)

    def structure(self, data):
        from bilevelbench.families.ccd.generate import structure_from_arrays

        return structure_from_arrays(self.name, data.structure)

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.design_dim, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.size}: design of {s.design_dim} entries, kappa {s.kappa:g}; labels are best-known "
                "(a documented search, docs/families/ccd.md), never certified"]

    def label_checker(self, ds):
        from bilevelbench.families.ccd.verify import label_checker

        return label_checker(ds)

    def oracle_checker(self, ds):
        raise OracleUnavailableError(f"{self.name} labels are best-known (a documented search, never certified) and "
                                     "no exact method exists to re-solve them; 'bilevelbench verify' without "
                                     "--oracle re-evaluates every label's follower for the instance alone")

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.ccd.score import score_ccd

        return score_ccd(self.name, ds.structure, answers.params, answers.labels, answers.y, answers.answered,
                         answers.reasons, progress)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        from bilevelbench.families.ccd.score import headline_metrics

        return headline_metrics(score, aggregates)

    def summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.families.ccd.score import summary_lines

        return summary_lines(metrics)


TWOTANK = CCD("ccd-twotank", "control co-design of a two-tank system (Kotary et al.): design the valve "
                             "coefficients, the follower tracks a target level; best-known labels",
              ("p",), 2)
HVAC = CCD("ccd-hvac", "control co-design of a two-zone building HVAC (psl's SimpleSingleZone): size the heaters, "
                       "the follower is a comfort-band MPC QP; best-known labels",
           ("x0", "ymin", "ymax", "d"), 1)
