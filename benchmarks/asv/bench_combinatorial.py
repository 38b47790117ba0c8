"""Exact labels of the interdiction families, and one training step of BiGrad's estimators (BB against PT) at
the paper's smallest sizes: the goal is a BB step within 5x of a PT step at k = 12."""

from __future__ import annotations

from . import common


def _spi12(folder):
    from bilevelbench.families.spi.generate import SPIRequest, generate_spi

    return generate_spi(SPIRequest(size=12, budget=3, n_train=16, n_valid=0, n_test=4, seed=1),
                        folder / "spi-12-bench.h5", name="spi-12-bench")


class SPILabels:
    """One exact ``spi-grid`` label (SCIP MILP) and its independent re-check (path-hitting search), k = 12."""

    timeout = 300

    def setup(self):
        import numpy as np

        from bilevelbench.families.spi.problem import SPIStructure, sample_instances
        from bilevelbench.families.spi.terrain import TERRAIN_COST

        s = SPIStructure(12, 3, 1.0, TERRAIN_COST)
        self.maps = sample_instances(s, np.random.default_rng(0), 1)

    def time_label_milp(self):
        from bilevelbench.families.spi.grid import interdict_milp

        interdict_milp(self.maps["costs"][0], self.maps["interdiction_cost"][0], 3)


class TSPLabels:
    """One exact ``tsp-interdiction`` label (tour-edge search with Held-Karp), k = 8, 10, 12, B = 1."""

    params = [8, 10, 12]
    param_names = ["k"]
    timeout = 300

    def setup(self, k):
        import numpy as np

        from bilevelbench.families.tsp.problem import TSPStructure, city_set, sample_instances

        self.d = sample_instances(TSPStructure(k, 1, city_set()), np.random.default_rng(0), 1)["distances"][0]

    def time_label_search(self, k):
        from bilevelbench.families.tsp.tour import interdict_search

        interdict_search(self.d, 1)


class TrainingStep:
    """One optimiser step on 16 ``spi-grid`` maps at k = 12 (one process for the solver calls): BB calls the
    leader and the follower twice per sample, PT once."""

    params = ["bb", "pt"]
    param_names = ["method"]
    timeout = 600

    def setup_cache(self):
        return str(common.cached("spi-12-bench.h5", _spi12))

    def setup(self, path, method):
        import numpy as np
        import torch

        from baselines.bigrad_combinatorial.estimators import SolvePool
        from baselines.bigrad_combinatorial.tasks import task_for
        from baselines.bigrad_combinatorial.train import labelled
        from bilevelbench.data.instance_set import InstanceSet

        torch.manual_seed(0)
        torch.set_num_threads(1)
        ds = InstanceSet.open(path)
        self.task = task_for(ds.family, ds.structure)
        params, labels = labelled(ds.split("train"))
        self.inputs, self.contexts = self.task.inputs(params), self.task.contexts(params)
        self.x_star, self.y_star = (torch.from_numpy(np.asarray(a)) for a in self.task.targets(labels))
        self.net = self.task.cost_model(params)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.pool = SolvePool(1)

    def time_step(self, path, method):
        from baselines.bigrad_combinatorial.estimators import BilevelLayer, hamming

        c = self.net(self.inputs).double()
        x, y = BilevelLayer.apply(c, self.task, self.pool, self.contexts, method, 5.0, None)
        loss = (hamming(x, self.x_star) + hamming(y, self.y_star)).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
