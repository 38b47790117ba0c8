"""``dcopf_proxy`` as a submission: the end-to-end feasible proxy of Chen, Tanneau and Van Hentenryck.

``setup`` loads the weight file in ``weights/`` whose recorded structure hash matches the task
(``torch.load(..., weights_only=True)``; nothing else is unpickled) and rebuilds the network; ``solve`` maps the
loads ``pd`` (B, nb) to a dispatch ``pg`` (B, ng): MLP, bound clamp, hypersimplex projection
(:mod:`bilevelbench.families.dcopf.proxy`), run as a NumPy copy of the trained network
(:class:`~bilevelbench.families.dcopf.proxy.FrozenProxy`: the same function, with the projection's shift found
exactly from the sorted breakpoints instead of by bisection, and far less per-call overhead than torch at
batch size 1). Every answer meets power balance and the generator limits whenever
the demand lies within the fleet's range. Train new weights with
``python -m baselines.dcopf_proxy.train --dataset FILE --seed 0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.weights import scan_weights
from bilevelbench.errors import MissingDataError
from bilevelbench.families.dcopf.proxy import DCOPFProxy, FrozenProxy
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base
from bilevelbench.verification.graph import Affine, Clamp, ProxyGraph, ReLU, ShiftClip, Sigmoid

WEIGHTS = Path(__file__).resolve().parent / "weights"


def find_weights(structure_hash: str, folder: Path = WEIGHTS, clamp: str = "sigmoid") -> Path:
    """The weight file trained on this structure, or a clear error listing what exists.

    Parameters
    ----------
    structure_hash : str
        ``DCOPFStructure.digest()`` of the task.
    folder : Path
        Where to look (``*.pt`` files written by ``baselines/dcopf_proxy/train.py``).
    clamp : {"sigmoid", "hard"}
        The bound clamp the weights were trained with (files before the option record none: sigmoid).

    Raises
    ------
    MissingDataError
        If no file there records this structure hash.
    """
    found, seen = scan_weights(
        folder, lambda meta: (meta.get("structure_hash") == structure_hash and meta.get("method") == "dcopf_proxy"
                              and meta.get("clamp", "sigmoid") == clamp),
        lambda path, meta: (f"{path.name} ({meta.get('case') or '?'}, {str(meta.get('structure_hash'))[:12]}..., "
                            f"{meta.get('clamp', 'sigmoid')} clamp)"))
    if found is not None:
        return found
    raise MissingDataError(f"no dcopf_proxy weights with a {clamp} clamp for structure {structure_hash[:12]}... "
                           f"in {folder}; "
                           f"available: {', '.join(seen) or 'none'}; train with python -m "
                           "baselines.dcopf_proxy.train --dataset FILE")


def load_model(path: Path, structure, method: str | None = None) -> tuple[DCOPFProxy, dict]:
    """Rebuild the proxy stored in ``path`` for ``structure`` (``method`` overrides the projection's)."""
    blob = torch.load(path, weights_only=True, map_location="cpu")
    meta = blob["meta"]
    state = blob["state_dict"]
    model = DCOPFProxy(structure, state["x_mean"].numpy(), state["x_std"].numpy(), list(meta["hidden"]),
                       method or str(meta["shift_method"]), int(meta["iterations"]), meta.get("clamp", "sigmoid"))
    model.load_state_dict(state)
    model.eval()
    return model, meta


class Solver(_Base):
    name = "dcopf-proxy"
    version = "1"
    description = ("Chen, Tanneau and Van Hentenryck's end-to-end feasible proxy: MLP, sigmoid bound clamp, "
                   "hypersimplex projection onto power balance; self-supervised")
    #: Folder searched for weight files (tests point it elsewhere).
    weights_dir = WEIGHTS
    #: Which trained proxy to load: the sigmoid bound clamp of the paper.
    clamp = "sigmoid"

    def skip(self, spec):
        if spec.family != "dcopf":
            return True, f"trained for dcopf only, not {spec.family!r}"
        return False, None

    def setup(self, spec, train_set) -> None:
        path = find_weights(spec.structure.digest(), Path(self.weights_dir), self.clamp)
        self.model, meta = load_model(path, spec.structure)
        self.frozen = FrozenProxy(self.model)
        self.version = f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']})"
        self.weights_path = path

    def export_graph(self, spec) -> ProxyGraph:
        """The function :meth:`solve` computes, as layers for ``bilevelbench verify-proxy``.

        Normalisation is folded into the first affine layer; the bound clamp is ``Sigmoid`` (refused by the
        verifier: not piecewise linear) or, for a hard clamp, an affine map and ``Clamp``; the projection is
        ``ShiftClip`` with total ``sum(pd) + sum(gs)``.
        """
        return export_graph(self.frozen, spec.structure, f"{self.name} {self.version}")

    def solve(self, params) -> Prediction:
        return Prediction(y=self.frozen(np.asarray(params["pd"], dtype=np.float64)))


def export_graph(frozen: FrozenProxy, structure, description: str = "") -> ProxyGraph:
    """A :class:`FrozenProxy` as a :class:`~bilevelbench.verification.graph.ProxyGraph` (float64 weights)."""
    s = structure
    layers: list = []
    scale = 1.0 / frozen.x_std
    for i, (w, b) in enumerate(frozen.layers):
        w = np.asarray(w, np.float64).T                        # (out, in)
        b = np.asarray(b, np.float64)
        if i == 0:                                             # (pd - mean) / std folded in
            b = b - w @ (frozen.x_mean * scale)
            w = w * scale[None, :]
        layers.append(Affine(w, b))
        if i < len(frozen.layers) - 1:
            layers.append(ReLU())
    width = s.pmax - s.pmin
    if frozen.clamp == "hard":                                 # pmin + width * clip(1/2 + raw/4, 0, 1)
        layers += [Affine(np.diag(0.25 * width), s.pmin + 0.5 * width), Clamp(s.pmin, s.pmax)]
    else:
        layers += [Sigmoid(), Affine(np.diag(width), s.pmin)]
    layers.append(ShiftClip(s.pmin, s.pmax, np.ones(s.n_bus), float(np.sum(s.gs))))
    return ProxyGraph("pd", "pg", s.n_bus, tuple(layers), description)


class VerifiableSolver(Solver):
    """The same proxy with the piecewise-linear (hard) bound clamp and a small network (2 x 32): what
    ``bilevelbench verify-proxy`` can verify exactly. Train with ``--clamp hard --hidden 32,32``."""

    name = "dcopf-proxy-pwl"
    description = ("Chen, Tanneau and Van Hentenryck's end-to-end feasible proxy with a hard (piecewise-linear) "
                   "bound clamp and a 2 x 32 MLP, so its worst case can be verified exactly")
    clamp = "hard"
