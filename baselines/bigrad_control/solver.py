"""BiGrad, the two-step layer, the nominal controller and supervised learning on ``adv-control``, as submissions::

    bilevelbench evaluate --dataset data/adv-control-T5.h5 --solver baselines/bigrad_control/solver.py:BiGrad

``setup`` loads the weight file in ``weights/`` whose recorded structure hash and method match the task
(``torch.load(..., weights_only=True)``; nothing else is unpickled); ``solve`` is one forward pass of the policy
network (the initial state and the adversary's target in, the controls out). The evaluator re-solves the
adversary. Training: ``python -m baselines.bigrad_control.train``; the layer: ``layer.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base

WEIGHTS = Path(__file__).resolve().parent / "weights"


def find_weights(structure_hash: str, method: str, folder: Path = WEIGHTS) -> Path:
    """The weight file trained with ``method`` on this structure, or a clear error listing what exists."""
    from baselines.bigrad_control.train import METHODS
    from baselines.weights import find_weights as shared_find_weights

    return shared_find_weights(folder, structure_hash, method, METHODS, "bigrad_control")


class _Policy(_Base):
    method = "bigrad"
    version = "1"
    weights_dir = WEIGHTS

    def skip(self, spec):
        if spec.family != "adv-control":
            return True, f"trained for adv-control only, not {spec.family!r}"
        return False, None

    def setup(self, spec, train_set) -> None:
        import torch

        from baselines.bigrad_control.layer import Policy

        torch.set_num_threads(1)
        path = find_weights(spec.structure.digest(), self.method, Path(self.weights_dir))
        blob = torch.load(path, weights_only=True, map_location="cpu")
        meta = blob["meta"]
        self.net = Policy(spec.structure, int(meta["hidden"])).double()
        self.net.load_state_dict(blob["state_dict"])
        self.net.eval()
        self.version = f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']})"

    def solve(self, params) -> Prediction:
        import torch

        with torch.no_grad():
            U = self.net(torch.from_numpy(np.asarray(params["x0"], np.float64)),
                         torch.from_numpy(np.asarray(params["target"], np.float64)))
        return Prediction(y=U.numpy())


class BiGrad(_Policy):
    name = "bigrad"
    method = "bigrad"
    description = ("BiGrad: a policy network trained on the leader's cost with the adversary as an implicit layer "
                   "(the implicit function theorem on its KKT conditions)")


class TwoStep(_Policy):
    name = "two-step"
    method = "two-step"
    description = ("two-step implicit layer: the same network and loss, the adversary solved then held fixed in "
                   "the backward pass")


class Nominal(_Policy):
    name = "nominal"
    method = "nominal"
    description = "nominal: the same network trained on the leader's cost without the adversary (W = 0)"


class SL(_Policy):
    name = "sl"
    method = "sl"
    description = "supervised: the same network regressed on the certified controls (mean squared error)"
