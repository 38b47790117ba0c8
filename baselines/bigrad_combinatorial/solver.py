"""BiGrad(BB), BiGrad(PT), BB-1, PT-1 and SL on ``spi-grid`` and ``tsp-interdiction``, as submissions::

    bilevelbench evaluate --dataset data/spi-grid-12.h5 --solver baselines/bigrad_combinatorial/solver.py:BiGradBB

``setup`` loads the weight file in ``weights/`` whose recorded structure hash and method match the task
(``torch.load(..., weights_only=True)``; nothing else is unpickled). ``solve`` predicts the costs (tile costs from
the map image; city distances from which cities an instance holds) and runs the family's exact leader on them
(BB, PT, BB-1, PT-1), or predicts one score per tile or edge and takes the top B (SL). The evaluator then
re-solves the follower at the true costs. Training: ``baselines/bigrad_combinatorial/train.py``; the methods:
``estimators.py``.
"""

from __future__ import annotations

from pathlib import Path

from baselines.bigrad_combinatorial import model
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base

FAMILIES = ("spi-grid", "tsp-interdiction")


class _Combinatorial(_Base):
    method = "bb"
    version = "1"
    weights_dir = model.WEIGHTS

    def skip(self, spec):
        if spec.family not in FAMILIES:
            return True, f"trained for {', '.join(FAMILIES)} only, not {spec.family!r}"
        return False, None

    def setup(self, spec, train_set) -> None:
        import torch

        torch.set_num_threads(1)
        path = model.find_weights(spec.structure.digest(), self.method, Path(self.weights_dir))
        self.task, self.net, meta = model.load(path, spec.family, spec.structure)
        self.version = f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']})"

    def solve(self, params) -> Prediction:
        x = model.decide(self.task, self.net, self.method, params)
        return Prediction(y=self.task.answer(x))


class BiGradBB(_Combinatorial):
    name = "bigrad-bb"
    method = "bb"
    description = ("BiGrad(BB): predicted costs -> exact bilevel solver; trained by blackbox differentiation of "
                   "both levels (eq. 8) on the Hamming loss of the interdiction and the follower's solution")


class BiGradPT(_Combinatorial):
    name = "bigrad-pt"
    method = "pt"
    description = ("BiGrad(PT): predicted costs -> exact bilevel solver; trained with the straight-through "
                   "gradient of both levels (eq. 9)")


class BB1(_Combinatorial):
    name = "bb-1"
    method = "bb1"
    description = ("BB-1 (Pogancic et al.): predicted costs -> exact bilevel solver; trained through the follower "
                   "only (leader held at the label), blackbox differentiation")


class PT1(_Combinatorial):
    name = "pt-1"
    method = "pt1"
    description = "PT-1: as BB-1 with the straight-through gradient"


class SL(_Combinatorial):
    name = "sl"
    method = "sl"
    description = "SL: a network scores tiles or edges directly (cross-entropy on the label); the top B are taken"


Solver = BiGradBB
