"""The evaluator: scoring throughput per family, dataset reading, evaluation memory."""

from __future__ import annotations

import numpy as np

from . import common


class Scoring:
    """Scoring a split of exact answers (the work the evaluator adds to every run)."""

    timeout = 600

    def setup_cache(self):
        sets = common.fixed_sets()
        return {"bqp": sets["bqp"], "tank": sets["tank"], "dcopf": sets["dcopf118"]}

    def setup(self, paths):
        from bilevelbench.data.instance_set import InstanceSet

        self.data = {}
        for key, path in paths.items():
            ds = InstanceSet.open(path)
            test = ds.split("test")
            field = {"bqp": "y", "tank": "x", "dcopf": "pg"}[key]
            self.data[key] = (ds, test.params, test.labels, test.labels[field])

    def _score(self, key):
        from bilevelbench.evaluate.evaluator import score_split

        ds, params, labels, y = self.data[key]
        score_split(ds, params, labels, y, np.ones(y.shape[0], bool), {})

    def time_score_bqp_24(self, paths):
        self._score("bqp")

    def time_score_mimpc_tank_12(self, paths):
        self._score("tank")

    def time_score_dcopf_case118_200(self, paths):
        self._score("dcopf")

    def time_read_dcopf_case118(self, paths):
        from bilevelbench.data.instance_set import InstanceSet

        ds = InstanceSet.open(paths["dcopf"])
        _ = ds.params["pd"], ds.labels["pg"], ds.labels["lmp"]

    def peakmem_score_dcopf_case118_200(self, paths):
        self._score("dcopf")
