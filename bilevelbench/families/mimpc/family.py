"""The mixed-integer MPC families ``mimpc-robot`` and ``mimpc-tank`` (Le, Xie and Mangharam, appendix B): their
descriptors for the generic layers (:class:`bilevelbench.core.family.Family`).

Everything of these families lives in this folder: the MIQP form (:mod:`.miqp`), the two problems
(:mod:`.problem`), certified labels (:mod:`.certify`), generation (:mod:`.generate`), closed-loop simulation
(:mod:`.closed_loop`), verification and the second-solver oracle (:mod:`.verify`), scoring (:mod:`.score`),
the exact reference solver (:mod:`.exact`) and the relaxed-QP layers of the learned methods.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.core.family import Answers, Column, Family, GenerateRequest, Option

OPTIONS = (
    Option("closed_loop_episodes", int, 0, "run the exact MPC in closed loop from the first E test instances and "
                                           "store the episodes as references for evaluate --closed-loop",
           metavar="E"),
    Option("closed_loop_steps", int, 20, "steps per reference episode", metavar="T"),
    Option("backend", str, "auto", "exact solver: auto (gurobi when installed and its license takes the model, "
                                   "else scip), scip or gurobi; labels are re-checked by HiGHS either way",
           choices=("auto", "scip", "gurobi"), run_setting=True),
    Option("time_limit", float, 600.0, "seconds per instance", metavar="SEC", run_setting=True),
    Option("geometry", str, "issue", "robot geometry: issue (the family's default: half-sizes 0.8 x 1.0 m, "
                                     "x in [-0.5, 3]) or authors (the authors' code: half-sizes 0.2 x 0.25 m, "
                                     "x in [-0.5, 2], two binaries per obstacle and step)",
           choices=("issue", "authors")),
    Option("sampling", str, "independent", "independent draws, or closed-loop: the states exact-MPC episodes "
                                           "visit from random starts at rest (the authors' data collection; "
                                           "robot only)", choices=("independent", "closed-loop")),
    Option("collect_steps", int, 100, "with --sampling closed-loop: at most this many states per episode",
           metavar="T"),
)


class MIMPC(Family):
    """One of the two mixed-integer MPC families (the robot or the tank); both share this descriptor."""

    decision = "x"
    param_fields = ("theta",)
    label_fields = ("x", "objective")
    generator_version = "1"
    seed_stream = 1
    options = OPTIONS
    leaderboard_columns = (Column("integer_violation_rate", "integer-only violated"),
                           Column("continuous_violation_rate", "continuous violated"),
                           Column("cost_ratio_mean", "closed-loop cost / exact"))
    exact_solver = "bilevelbench.families.mimpc.exact:ExactMIQPSolver"
    closed_loop = True
    extra_splits = ("infeasible",)
    oracle_method = "the MIQP re-solved by the other exact solver (SCIP for Gurobi's labels and vice versa)"

    def __init__(self, name: str, title: str, example: str, tiny_args: tuple[str, ...]) -> None:
        self.name = name
        self.title = title
        self.example = example
        self.tiny_args = tiny_args
        self.docs = "docs/families/mimpc.md"

    def generate(self, request: GenerateRequest) -> Path:
        from bilevelbench.errors import UsageError
        from bilevelbench.families.mimpc.certify import MIQPCertifierSettings
        from bilevelbench.families.mimpc.generate import MIQPRequest, generate_miqp

        o = request.options
        if not o["time_limit"] > 0:
            raise UsageError(f"--time-limit must be positive, got {o['time_limit']}")
        episodes = o["closed_loop_episodes"]
        miqp_request = MIQPRequest(family=self.name, n_train=request.n_train, n_valid=request.n_valid,
                                   n_test=request.n_test, seed=request.seed, closed_loop_episodes=episodes,
                                   closed_loop_steps=o["closed_loop_steps"] if episodes else 0,
                                   geometry=o["geometry"], sampling=o["sampling"],
                                   collect_steps=o["collect_steps"])
        settings = MIQPCertifierSettings(backend=o["backend"], time_limit=o["time_limit"])
        return generate_miqp(miqp_request, request.out, settings, workers=request.workers,
                             overwrite=request.overwrite, progress=request.progress, name=request.name,
                             spec=request.spec, scheduler=request.scheduler)

    def sample(self, ds, rng, n):
        from bilevelbench.errors import UsageError
        from bilevelbench.families.mimpc.problem import geometry_of, sample_theta

        if (ds.meta.get("sampling") or {}).get("sampling") == "closed-loop":
            raise UsageError(f"{ds.path}: its instances are states visited by exact-MPC episodes; fresh draws "
                             "from that distribution need the MPC solved along new episodes (use the train "
                             "split, or generate more)")
        return {"theta": sample_theta(self.name, rng, n, geometry_of(ds.structure))}

    def structure(self, data):
        from bilevelbench.errors import SchemaError
        from bilevelbench.families.mimpc.miqp import STRUCTURE_KEYS, MIQPStructure

        meta = data.attrs.get("miqp")
        if not isinstance(meta, dict):
            raise SchemaError("a mixed-integer instance set needs the root attribute 'miqp' (class and decision "
                              "names)")
        arrays = {key: data.structure[key] for key in STRUCTURE_KEYS}
        arrays["c0"] = float(np.asarray(arrays["c0"]).reshape(()))
        extra = {key: np.asarray(value, dtype=float) for key, value in meta.get("extra", {}).items()}
        return MIQPStructure(**arrays, class_names=tuple(meta["class_names"]),
                             decision_names=tuple(meta.get("decision_names", ())), extra=extra)

    def decision_dims(self, structure) -> tuple[int, int]:
        return structure.n, 0

    def info_lines(self, ds) -> list[str]:
        s = ds.structure
        lines = [f"size            {s.size}: {s.n - s.n_integer} continuous / {s.n_integer} integer variables, "
                 f"{s.p} parameters, {s.G.shape[0]} rows ({', '.join(s.class_names)}; integer-only: "
                 f"{', '.join(s.integer_only_classes) or 'none'})"]
        ref = ds.closed_loop
        if ref:
            lines.append(f"closed loop     {len(ref['start_index'])} exact-MPC episodes of {ref['stage_cost'].shape[1]} "
                         f"steps ({int(ref['completed'].sum())} completed)")
        return lines

    def label_checker(self, ds):
        from bilevelbench.families.mimpc.verify import label_checker

        return label_checker(ds)

    def oracle_checker(self, ds):
        from bilevelbench.families.mimpc.verify import oracle_checker

        return oracle_checker(ds)

    def score(self, ds, answers: Answers, progress=None):
        from bilevelbench.evaluate.scoring import paper_offset
        from bilevelbench.families.mimpc.score import score_miqp

        return score_miqp(ds.structure, answers.params, answers.labels, answers.y, answers.answered,
                          answers.reasons, paper_offset(ds.meta), progress)

    def headline_metrics(self, score, aggregates: dict[str, dict]) -> dict:
        from bilevelbench.families.mimpc.score import headline_metrics

        return headline_metrics(score, aggregates)

    def summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.families.mimpc.score import summary_lines

        return summary_lines(metrics)

    def closed_loop_summary_lines(self, metrics: dict) -> list[str]:
        from bilevelbench.families.mimpc.closed_loop import summary_lines

        return summary_lines(metrics)

    def closed_loop_plan(self, ds, steps: int, episodes: int | None):
        from bilevelbench.families.mimpc.closed_loop import closed_loop_plan

        return closed_loop_plan(ds, steps, episodes)

    def score_closed_loop(self, ds, plan: dict, reference: dict, decisions: list, latencies: list):
        from bilevelbench.families.mimpc.closed_loop import score_closed_loop

        return score_closed_loop(ds, plan, reference, decisions, latencies)

    def run_episode(self, ds, theta0, steps: int, policy, disturbances):
        from bilevelbench.families.mimpc.closed_loop import run_episode

        return run_episode(ds.family, ds.structure, theta0, steps, policy, disturbances)


ROBOT = MIMPC("mimpc-robot", "mixed-integer MPC of a robot among three obstacles (Le, Xie and Mangharam, "
                             "appendix B): one MIQP per state and goal, certified labels",
              "--n-test 20 --out mimpc-robot.h5",
              ("--n-test", "2", "--seed", "2", "--backend", "scip"))
TANK = MIMPC("mimpc-tank", "mixed-integer MPC of a two-tank energy system with a four-level pump (Le, Xie and "
                           "Mangharam, appendix B): one MIQP per state and disturbance forecast, certified labels",
             "--n-test 20 --closed-loop-episodes 2 --out mimpc-tank.h5",
             ("--n-test", "2", "--seed", "4", "--backend", "scip"))
