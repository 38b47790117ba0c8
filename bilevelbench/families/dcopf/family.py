"""The ``dcopf`` family's descriptor (:class:`bilevelbench.core.family.Family`): DC optimal power flow on a PGLib
grid with MATPOWER's DC conventions.

Everything of the family lives in this folder: the MATPOWER parser and the shipped PGLib cases (:mod:`.power`),
the problem (:mod:`.problem`), certified labels (:mod:`.certify`), generation (:mod:`.generate`), verification
and the PTDF oracle (:mod:`.verify`), scoring (:mod:`.score`), the exact solver (:mod:`.exact`) and the learned
proxy's layers (:mod:`.proxy`).
"""

from __future__ import annotations

from pathlib import Path

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class DCOPF(Family):
    """Economic dispatch on the PTDF of a PGLib grid, thermal limits softened; labels certified by their duals."""

    name = "dcopf"
    title = "DC optimal power flow on a PGLib-OPF grid (MATPOWER DC conventions), labels certified by their duals"
    docs = "docs/families/dcopf.md"
    example = "--case case57 --n-train 1000 --n-test 200 --out dcopf-case57.h5"
    tiny_args = ("--case", "case14", "--n-train", "2", "--n-test", "3", "--seed", "4")
    decision = "pg"
    param_fields = ("pd",)
    label_fields = ("pg", "objective")
    generator_version = 1
    seed_stream = 2
    data_license = "https://creativecommons.org/licenses/by/4.0/"
    data_license_note = "built on PGLib-OPF v23.07 case files (CC BY 4.0); attribution in data/pglib/SOURCE.md"
    options = (
        Option("case", str, None, "PGLib-OPF case: a shipped name (pglib_opf_case14_ieee, _case30_ieee, _case57_ieee, "
                                  "_case118_ieee, _case300_ieee, or short: case118) or the path of any MATPOWER .m "
                                  "file", metavar="NAME|FILE", required=True),
        Option("load_scale", list, [0.6, 1.0], "pd = alpha * eta (.) pd_ref with alpha ~ U[LO, HI] per instance",
               metavar="LO,HI", length=2),
        Option("load_noise", float, 0.15, "eta ~ U[1 - SIGMA, 1 + SIGMA] per bus", metavar="SIGMA"),
        Option("penalty", float, 1500.0, "price of thermal-limit violation, $/MW (PGLearn's 150000 "
                                         "per unit)", metavar="M"),
        Option("backend", str, "highs", "labels are solved by HiGHS (LP/QP) and certified by their duals",
               choices=("highs",), run_setting=True),
        Option("time_limit", float, 60.0, "seconds HiGHS may spend on one instance", metavar="SEC",
               run_setting=True),
    )
    leaderboard_columns = (Column("balance_violation_rate", "balance violated"),
                           Column("generator_violation_rate", "gen. limits violated"),
                           Column("thermal_violation_cost_mean", "overload cost mean ($)"))
    exact_solver = "bilevelbench.families.dcopf.exact:ExactDCOPFSolver"
    oracle_method = "the PTDF formulation solved by SCIP (the labels: the angle formulation by HiGHS)"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.errors import UsageError
        from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings
        from bilevelbench.families.dcopf.generate import DCOPFRequest, generate_dcopf

        o = request.options
        if not o["time_limit"] > 0:
            raise UsageError(f"--time-limit must be positive, got {o['time_limit']}")
        dcopf_request = DCOPFRequest(case=o["case"], n_train=request.n_train, n_valid=request.n_valid,
                                     n_test=request.n_test, seed=request.seed,
                                     load_scale=tuple(float(v) for v in o["load_scale"]),
                                     load_noise=o["load_noise"], penalty=o["penalty"])
        settings = DCOPFCertifierSettings(time_limit=o["time_limit"])
        return generate_dcopf(dcopf_request, request.out, settings, workers=request.workers,
                              overwrite=request.overwrite, progress=request.progress, name=request.name,
                              spec=request.spec, scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.dcopf.problem import sample_loads

        sampling = ds.meta.get("sampling", {})
        scale = tuple(float(v) for v in sampling.get("load_scale", self.option("load_scale").default))
        noise = float(sampling.get("load_noise", self.option("load_noise").default))
        return {"pd": sample_loads(ds.structure, rng, n, scale, noise)}

    def structure(self, data):
        from bilevelbench.families.dcopf.problem import structure_from_arrays

        return structure_from_arrays(data.structure, (data.attrs.get("dcopf") or {}).get("case", ""))

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.n_gen, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.size}: case {s.case}, {s.n_bus} buses, {s.n_gen} generators, {s.n_branch} "
                f"branches ({s.limited.size} with a thermal limit, penalty {s.penalty:g} $/MW)"]

    def label_checker(self, ds):
        from bilevelbench.families.dcopf.verify import label_checker

        return label_checker(ds)

    def oracle_checker(self, ds):
        from bilevelbench.families.dcopf.verify import oracle_checker

        return oracle_checker(ds)

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.dcopf.score import score_dcopf

        return score_dcopf(ds.structure, answers.params, answers.labels, answers.y, answers.answered,
                           answers.reasons, progress)

    def verification_problem(self, ds):
        from bilevelbench.families.dcopf.verification import verification_problem

        return verification_problem(ds)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        from bilevelbench.families.dcopf.score import headline_metrics

        return headline_metrics(score, aggregates)

    def summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.families.dcopf.score import summary_lines

        return summary_lines(metrics)


FAMILY = DCOPF()
