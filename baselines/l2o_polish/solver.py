"""``l2o-polish``: the L2O network's prediction, then exact local work over the follower's KKT regions.

1. The network of ``baselines/l2o_correction`` (Kotary et al.; its committed weights) predicts ``y0``.
2. The follower is solved at ``y0``; its active rows name a KKT region (:mod:`.regions`).
3. A best-improvement search over regions: the region's optimum (a strictly convex QP in ``y``, one
   ``quadprog`` call on matrices built once per region and data set), then the best region one row away while
   that improves, and up to ``radius`` rows away before stopping.

Every answer is a region's optimum, so it is bilevel feasible (the follower's KKT conditions hold there) up to
the QP solver's accuracy; where every region tried is empty (not seen on the committed sets) the network's
``y0`` is returned. No step is learned beyond the network: the search is exact local work, not a certificate;
how often it reaches the certified optimum is measured, not assumed (``docs/baselines.md``).
"""

from __future__ import annotations

import numpy as np
import torch

from baselines.l2o_correction.solver import find_weights
from baselines.l2o_polish.regions import Regions, local_search
from bilevelbench.families.bqp.coupling import MLP
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base


class Solver(_Base):
    name = "l2o-polish"
    version = "1"
    description = ("L2O network prediction, then a best-improvement search over the follower's KKT regions "
                   "(exact region QPs, radius 2)")
    #: How many follower rows away the search looks before it stops (1: adjacent regions only).
    radius = 2

    def skip(self, spec):
        return (spec.family != "bqp", f"built for bqp only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        s = spec.structure
        path = find_weights(s.digest())
        blob = torch.load(path, weights_only=True, map_location="cpu")
        meta = blob["meta"]
        self.mlp = MLP([s.m + s.n, *meta["hidden"], s.m]).double()
        self.mlp.load_state_dict(blob["state_dict"])
        self.mlp.eval()
        self.regions = Regions(s)
        self.version = f"1 ({path.name}, seed {meta['seed']}, radius {self.radius})"

    def solve(self, params) -> Prediction:
        c = np.asarray(params["c"], dtype=np.float64)
        d = np.asarray(params["d"], dtype=np.float64)
        with torch.no_grad():
            y0 = self.mlp(torch.from_numpy(np.concatenate([c, d], 1))).numpy()
        y = y0.copy()
        for i in range(y.shape[0]):
            start = self.regions.follower_mask(y0[i])
            best, _, _ = local_search(self.regions, c[i], d[i], start, radius=self.radius)
            if best is not None:
                y[i] = best[1]
        return Prediction(y=y)


class Adjacent(Solver):
    """The search over adjacent regions only (radius 1): faster, and stops at more local optima."""

    name = "l2o-polish-r1"
    radius = 1
