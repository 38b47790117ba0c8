"""``knapsack_proxy`` as a submission: capacities -> MLP (2 x 32 ReLU) -> item scores -> greedy repair.

``setup`` loads the weight file in ``weights/`` whose recorded structure hash matches the task
(``torch.load(..., weights_only=True)``: nothing else is unpickled) and keeps a float64 NumPy copy of the network;
``solve`` maps the capacities (B, m) to scores ``z`` (B, n) and then to 0/1 answers with
:func:`bilevelbench.verification.graph.greedy_repair` (items in index order, which the family sorts by value
density, taken when ``z_j > 0`` and they still fit). Every answer is binary and within capacity for every
capacity ``>= 0``. ``export_graph`` gives the same function as a
:class:`~bilevelbench.verification.graph.ProxyGraph` (normalisation folded into the first affine layer).
Train new weights with ``python -m baselines.knapsack_proxy.train --dataset FILE --seed 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bilevelbench.errors import MissingDataError, UsageError
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base
from bilevelbench.verification.graph import Affine, GreedyRepair, ProxyGraph, ReLU, greedy_repair

WEIGHTS = Path(__file__).resolve().parent / "weights"
METHOD = "knapsack_proxy"


@dataclass(frozen=True)
class FrozenNet:
    """The trained network in float64 NumPy: ``x_mean``, ``x_std`` (m,) and ``layers`` [(W (out, in), b (out,))]."""

    x_mean: np.ndarray
    x_std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def scores(self, capacity: np.ndarray) -> np.ndarray:
        """Item scores ``z`` (B, n) for capacities (B, m): normalise, then affine / ReLU layers."""
        z = (np.atleast_2d(np.asarray(capacity, dtype=np.float64)) - self.x_mean) / self.x_std
        for i, (w, b) in enumerate(self.layers):
            z = z @ w.T + b
            if i < len(self.layers) - 1:
                z = np.maximum(z, 0.0)
        return z

    @classmethod
    def from_state(cls, state: dict) -> FrozenNet:
        """From a saved ``state_dict`` (``x_mean``, ``x_std``, ``mlp.<k>.weight`` / ``.bias``)."""
        linear = sorted({int(k.split(".")[1]) for k in state if k.startswith("mlp.") and k.endswith(".weight")})
        layers = tuple((state[f"mlp.{k}.weight"].double().numpy(), state[f"mlp.{k}.bias"].double().numpy())
                       for k in linear)
        return cls(state["x_mean"].double().numpy(), state["x_std"].double().numpy(), layers)


def find_weights(structure_hash: str, folder: Path = WEIGHTS) -> Path:
    """The weight file trained on this structure, or a clear error listing what exists.

    Parameters
    ----------
    structure_hash : str
        ``KnapsackStructure.digest()`` of the task.
    folder : Path
        Where to look (``*.pt`` files written by ``baselines/knapsack_proxy/train.py``).

    Raises
    ------
    MissingDataError
        If no file there records this structure hash.
    """
    from baselines.weights import scan_weights

    found, seen = scan_weights(
        folder, lambda meta: meta.get("structure_hash") == structure_hash and meta.get("method") == METHOD,
        lambda path, meta: f"{path.name} ({meta.get('size') or '?'}, {str(meta.get('structure_hash'))[:12]}...)")
    if found is not None:
        return found
    raise MissingDataError(f"no knapsack_proxy weights for structure {structure_hash[:12]}... in {folder}; "
                           f"available: {', '.join(seen) or 'none'}; train with python -m "
                           "baselines.knapsack_proxy.train --dataset FILE")


def load_network(path: Path) -> tuple[FrozenNet, dict]:
    """The network stored in ``path`` (``torch.load(..., weights_only=True)``) and its meta."""
    import torch

    blob = torch.load(path, weights_only=True, map_location="cpu")
    return FrozenNet.from_state(blob["state_dict"]), blob["meta"]


def export_graph(net: FrozenNet, structure, description: str = "") -> ProxyGraph:
    """``net`` followed by the greedy repair, as a :class:`ProxyGraph` from ``capacity`` to ``y``."""
    layers: list = []
    scale = 1.0 / net.x_std
    for i, (w, b) in enumerate(net.layers):
        if i == 0:                                             # (c - mean) / std folded in
            w, b = w * scale[None, :], b - w @ (net.x_mean * scale)
        layers.append(Affine(w, b))
        if i < len(net.layers) - 1:
            layers.append(ReLU())
    m = structure.n_constraints
    layers.append(GreedyRepair(structure.weight.astype(np.float64), np.eye(m), np.zeros(m)))
    return ProxyGraph("capacity", "y", m, tuple(layers), description)


class Solver(_Base):
    name = "knapsack-proxy"
    version = "1"
    description = ("MLP (2 x 32 ReLU) item scores on normalised capacities, greedy repair in value-density order; "
                   "trained with binary cross-entropy against the certified labels")
    #: Folder searched for weight files (tests point it elsewhere).
    weights_dir = WEIGHTS

    def skip(self, spec):
        if spec.family != "knapsack":
            return True, f"trained for knapsack only, not {spec.family!r}"
        return False, None

    def setup(self, spec, train_set) -> None:
        path = find_weights(spec.structure.digest(), Path(self.weights_dir))
        self.net, meta = load_network(path)
        self.structure = spec.structure
        self.weight = spec.structure.weight.astype(np.float64)
        self.version = f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']})"
        self.weights_path = path

    def solve(self, params) -> Prediction:
        capacity = np.atleast_2d(np.asarray(params["capacity"], dtype=np.float64))
        if capacity.shape[1] != self.weight.shape[0]:
            raise UsageError(f"capacity has {capacity.shape[1]} columns, expected {self.weight.shape[0]}")
        return Prediction(y=greedy_repair(self.net.scores(capacity), self.weight, capacity))

    def export_graph(self, spec) -> ProxyGraph:
        """The function :meth:`solve` computes, as layers for worst-case verification: Affine (normalisation
        folded in), ReLU, Affine, ReLU, Affine, GreedyRepair (capacity read from the input unchanged)."""
        return export_graph(self.net, spec.structure, f"{self.name} {self.version}")
