"""The ``adv-control`` family's descriptor: a controller against a bounded adversary with its own target
(BiGrad's Table 1 task; see :mod:`.problem` for the game, :mod:`.kkt` for the exact labels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option


class AdversarialControl(Family):
    """Leader: controls over a horizon; follower: a bounded adversary steering the state to its target."""

    name = "adv-control"
    title = ("finite-horizon control of a linear system against a bounded adversary with its own target "
             "(BiGrad's Table 1), labels certified by a KKT-SOS1 reformulation in SCIP")
    docs = "docs/families/adv-control.md"
    example = "--horizon 5 --n-train 1000 --n-test 200 --out adv-5.h5"
    tiny_args = ("--horizon", "3", "--states", "3", "--n-train", "2", "--n-test", "3", "--seed", "1")
    decision = "u"
    follower = "w"
    param_fields = ("x0", "target")
    label_fields = ("u", "w", "objective")
    timing_fields = ("nodes",)
    generator_version = 1
    seed_stream = 15
    options = (
        Option("states", int, 4, "state dimension n_x", metavar="NX"),
        Option("controls", int, 2, "control inputs n_u", metavar="NU"),
        Option("disturbances", int, 2, "the adversary's input channels n_w", metavar="NW"),
        Option("horizon", int, 5, "steps T (the adversary has T * n_w variables; at most 60)", metavar="T"),
        Option("r", float, 0.1, "the leader's control weight (J = X'X + r U'U)", metavar="R"),
        Option("u_max", float, 1.0, "bound on every control entry", metavar="U"),
        Option("w_max", float, 0.3, "bound on every adversary entry", metavar="W"),
        Option("gamma_factor", float, 0.1, "the adversary's price of effort, as a multiple of sqrt(lambda_max("
               "Gw'Gw)); small: it pushes against its bounds", metavar="G"),
        Option("x0_max", float, 2.0, "initial states and adversary targets are uniform in [-x0_max, x0_max]",
               metavar="X"),
        Option("spectral_radius", float, 1.05, "the drawn A is rescaled to this spectral radius (>1: unstable)",
               metavar="RHO"),
        Option("rel_gap", float, 1e-6, "relative gap SCIP's dual bound must close for a certified label",
               metavar="GAP"),
        Option("time_limit", float, 120.0, "seconds SCIP may spend on one label", metavar="SEC", run_setting=True),
    )
    leaderboard_columns = (Column("objective_mean", "average cost"), Column("u_distance_mean", "control RMS"))
    exact_solver = "bilevelbench.families.advctl.exact:ExactAdvSolver"
    oracle_method = ("branch and bound over the adversary's active sets with HiGHS QPs at the nodes (no SCIP, "
                     "no SOS1), closed to a relative gap of 1e-9")

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.families.advctl.generate import AdvRequest, generate_adv

        o = dict(request.options)
        adv = AdvRequest(**{k: o[k] for k in o}, n_train=request.n_train, n_valid=request.n_valid,
                         n_test=request.n_test, seed=request.seed)
        return generate_adv(adv, request.out, workers=request.workers, overwrite=request.overwrite,
                            progress=request.progress, name=request.name, spec=request.spec,
                            scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.families.advctl.problem import sample_instances

        return sample_instances(ds.structure, rng, n)

    def structure(self, data):
        from bilevelbench.families.advctl.problem import structure_from_arrays

        return structure_from_arrays(data.structure)

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.n_controls, structure.n_disturbances

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        return [f"size            {s.size}: {s.nx} states, {s.nu} controls, {s.nw} adversary channels, "
                f"horizon {s.horizon}",
                f"bounds          |u| <= {s.u_max:g}, |w| <= {s.w_max:g}; r = {s.r:g}, gamma = {s.gamma:.6g}"]

    def label_checker(self, ds):
        from bilevelbench.families.advctl import problem

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            U = labels["u"][pos]
            if status != "certified_optimal":
                return [] if not np.any(np.isfinite(U)) else ["a label that is not certified stores a solution"]
            problems = []
            if np.any(np.abs(U) > s.u_max * (1 + 1e-9)):
                problems.append(f"the controls exceed u_max = {s.u_max:g}")
            x0, target = params["x0"][pos], params["target"][pos]
            W = problem.follower_highs(s, problem.follower_linear(s, x0, target, U))
            if np.max(np.abs(W - labels["w"][pos])) > 1e-6:
                problems.append(f"HiGHS answers the adversary {np.max(np.abs(W - labels['w'][pos])):.2e} away "
                                "from the stored w")
            value = float(problem.leader_cost(s, x0, U, W))
            stored = float(labels["objective"][pos])
            if abs(value - stored) > 1e-6 * max(1.0, abs(stored)):
                problems.append(f"the cost at the stored controls is {value:.12g}, the label says {stored:.12g}")
            bound = float(labels["lower_bound"][pos])
            if not (bound <= stored + 1e-9 * max(1.0, abs(stored))):
                problems.append(f"the recorded lower bound {bound:.12g} exceeds the objective {stored:.12g}")
            settings = ds.meta.get("certifier_settings")
            gap = float(settings.get("rel_gap", 1e-6)) if isinstance(settings, dict) else 1e-6
            if stored - bound > gap * max(1.0, abs(stored)) * (1 + 1e-6) + 1e-9:
                problems.append(f"the gap to the lower bound, {(stored - bound) / max(1.0, abs(stored)):.2e}, is "
                                f"above the certified {gap:.0e}")
            return problems

        return check

    def oracle_checker(self, ds):
        from bilevelbench.families.advctl.oracle import branch_and_bound

        s, params, labels = ds.structure, ds.params, ds.labels

        def check(pos, status):
            if status != "certified_optimal":
                return []
            res = branch_and_bound(s, params["x0"][pos], params["target"][pos], rel_gap=1e-9)
            stored = float(labels["objective"][pos])
            if not res.closed:
                return [f"the branch and bound did not close within its node and time limits ({res.nodes} nodes; "
                        f"best {res.objective:.12g}, bound {res.lower_bound:.12g})"]
            if abs(res.objective - stored) > 1e-6 * max(1.0, abs(stored)):
                return [f"the branch and bound finds {res.objective:.12g}, the label says {stored:.12g}"]
            return []

        return check

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.families.advctl.score import score_adv

        return score_adv(ds, answers, progress)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        return {"objective_mean": aggregates["objective"]["mean"],
                "u_distance_mean": aggregates["u_distance"]["mean"],
                "w_distance_mean": aggregates["w_distance"]["mean"]}

    def summary_lines(self, metrics: dict) -> list[str]:
        def f(key):
            v = metrics.get(key)
            return "—" if v is None else f"{v:.4g}"

        return [f"  cost       mean {f('objective_mean')} (the adversary re-solved at the submitted controls)",
                f"  distance   controls RMS {f('u_distance_mean')}, adversary RMS {f('w_distance_mean')} "
                "from the label"]


FAMILY = AdversarialControl()
