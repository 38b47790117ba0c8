"""Control co-design: the followers every score, label and baseline uses, and one best-known label."""

from __future__ import annotations

import numpy as np

from . import common  # noqa: F401  (puts the repository on sys.path for ``baselines``)


def _test_draws(family: str, n: int):
    """The family's structure and the first ``n`` test draws of seed 1 (one solver thread)."""
    import torch

    from bilevelbench.families.ccd.generate import CCDRequest, draws_for, structure_for

    torch.set_num_threads(1)
    s = structure_for(family)
    return s, draws_for(CCDRequest(family=family, n_test=n, seed=1), s, 2)


class CCDFollower:
    """The evaluator's follower for a batch of 64 designs (two-tank: five starts; HVAC: the exact QP)."""

    params = ["ccd-twotank", "ccd-hvac"]
    param_names = ["family"]
    timeout = 300

    def setup(self, family):
        self.s, self.params_ = _test_draws(family, 64)
        rng = np.random.default_rng(0)
        if family == "ccd-twotank":
            self.design = np.column_stack([rng.uniform(0.05, 0.3, 64), np.full(64, 0.01)])
        else:
            self.design = np.tile(self.s.nominal_design, (64, 1)) * rng.uniform(0.1, 1.0, (64, 1))
        self.family = family

    def time_follower_batch64(self, family):
        from bilevelbench.families.ccd.generate import evaluate

        evaluate(self.family, self.s, self.design, self.params_)

    def track_converged_rate(self, family):
        from bilevelbench.families.ccd.generate import evaluate

        return float(np.mean(evaluate(self.family, self.s, self.design, self.params_)["follower_converged"]))

    track_converged_rate.unit = "fraction"


class CCDBestKnown:
    """One best-known label (grid/multistart + implicit-gradient search)."""

    params = ["ccd-twotank", "ccd-hvac"]
    param_names = ["family"]
    timeout = 300

    def setup(self, family):
        self.s, self.params_ = _test_draws(family, 1)
        self.family = family

    def time_label_one(self, family):
        from bilevelbench.families.ccd.best_known import search

        search(self.family, self.s, self.params_)


class TwoTankHessian:
    """The two-tank follower's Hessian for 128 rows: closed form (methods) against ``torch.func`` (labels)."""

    timeout = 300

    def setup(self):
        import torch

        self.s, params = _test_draws("ccd-twotank", 128)
        rng = np.random.default_rng(0)
        self.p = torch.as_tensor(params["p"])
        self.c = torch.as_tensor(rng.uniform(0.05, 0.3, (128, 2)))
        self.u = torch.as_tensor(rng.uniform(0.05, 0.95, (128, 2 * self.s.steps)))

    def time_closed_form(self):
        from bilevelbench.families.ccd.twotank import exact_hessian

        exact_hessian(self.s, self.u, self.c, self.p)

    def time_autodiff(self):
        from bilevelbench.families.ccd.layers import twotank_hessian

        twotank_hessian(self.s, self.u, self.c, self.p)


class ConvergedL2O:
    """The committed converged L2O (``l2o-correction-converged`` and its 3-step variant): a batch of 64 test draws
    of seed 1, time and penalised objective against the best-known search's on the first 2."""

    params = (["ccd-twotank", "ccd-hvac"], ["Converged", "ConvergedFast"])
    param_names = ["family", "solver"]
    timeout = 600

    def setup(self, family, solver):
        from baselines.l2o_correction import solver as module
        from bilevelbench.solvers import TaskSpec

        self.s, self.params_ = _test_draws(family, 64)
        spec = TaskSpec(family=family, dataset=family, split="test", n_instances=64, structure=self.s,
                        param_names=tuple(self.params_), y_dim=self.s.design_dim, z_dim=0)
        self.solver = getattr(module, solver)()
        self.solver.setup(spec, None)
        self.family = family

    def time_solve_batch64(self, family, solver):
        self.solver.solve(self.params_)

    def track_objective_vs_best_known(self, family, solver):
        from bilevelbench.families.ccd.best_known import search
        from bilevelbench.families.ccd.generate import evaluate

        first = {k: v[:2] for k, v in self.params_.items()}
        ours = evaluate(self.family, self.s, self.solver.solve(first).y, first)["objective"].mean()
        best = search(self.family, self.s, first)["objective"].mean()
        return float(ours / best - 1.0)

    track_objective_vs_best_known.unit = "relative"
