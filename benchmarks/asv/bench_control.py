"""``adv-control``: one certified label (SCIP's KKT-SOS1 model) against one oracle re-solve (the HiGHS branch and
bound) at horizons 5 and 10, and one training step of BiGrad's implicit adversary layer against the two-step
layer (32 samples, horizon 5)."""

from __future__ import annotations

from . import common  # noqa: F401  (puts the repository on sys.path for the baselines package)


def _structure(horizon):
    from bilevelbench.families.advctl.problem import draw_structure

    return draw_structure(1, 4, 2, 2, horizon, 0.1, 1.0, 0.3, 0.1, 2.0, 1.05)


class AdvLabels:
    """One exact label and one oracle re-solve of the same instance."""

    params = [5, 10]
    param_names = ["horizon"]
    timeout = 300

    def setup(self, horizon):
        import numpy as np

        from bilevelbench.families.advctl.kkt import ScipKKT
        from bilevelbench.families.advctl.problem import sample_instances

        self.s = _structure(horizon)
        self.kkt = ScipKKT(self.s)
        d = sample_instances(self.s, np.random.default_rng(0), 1)
        self.x0, self.target = d["x0"][0], d["target"][0]

    def time_label_scip(self, horizon):
        self.kkt.solve(self.x0, self.target, 120.0)

    def time_oracle_branch_and_bound(self, horizon):
        from bilevelbench.families.advctl.oracle import branch_and_bound

        branch_and_bound(self.s, self.x0, self.target, rel_gap=1e-9)


class AdvTrainingStep:
    """Forward (32 adversary solves), backward and an Adam step of the policy network, horizon 5."""

    params = ["implicit", "fixed"]
    param_names = ["layer"]
    timeout = 300

    def setup(self, layer):
        import numpy as np
        import torch

        from baselines.bigrad_control.layer import Matrices, Policy
        from bilevelbench.families.advctl.problem import sample_instances

        torch.manual_seed(0)
        torch.set_num_threads(1)
        self.s = _structure(5)
        d = sample_instances(self.s, np.random.default_rng(0), 32)
        self.x0, self.target = torch.from_numpy(d["x0"]), torch.from_numpy(d["target"])
        self.net = Policy(self.s).double()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.mats = Matrices(self.s)

    def time_step(self, layer):
        from baselines.bigrad_control.layer import AdversaryLayer

        U = self.net(self.x0, self.target)
        W = AdversaryLayer.apply(U, self.x0, self.target, self.s, layer)
        loss = self.mats.cost(self.x0, U, W).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
