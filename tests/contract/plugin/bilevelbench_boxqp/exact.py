"""The exact reference solver of ``boxqp``: the closed form, behind the submission contract."""

from __future__ import annotations

from bilevelbench.solvers import Prediction, Solver
from bilevelbench_boxqp import problem


class ClosedForm(Solver):
    name, version, description = "exact", "1", "boxqp: clip(p / D, lo, hi)"

    def setup(self, spec, train_set) -> None:
        self.s = spec.structure

    def solve(self, params):
        return Prediction(y=problem.solve(self.s, params["p"]))
