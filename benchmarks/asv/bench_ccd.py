"""Control co-design: the followers every score, label and baseline uses, and one best-known label."""

from __future__ import annotations

import numpy as np


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
