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

from bilevelbench.errors import MissingDataError
from bilevelbench.families.dcopf.proxy import DCOPFProxy, FrozenProxy
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base

WEIGHTS = Path(__file__).resolve().parent / "weights"


def find_weights(structure_hash: str, folder: Path = WEIGHTS) -> Path:
    """The weight file trained on this structure, or a clear error listing what exists.

    Parameters
    ----------
    structure_hash : str
        ``DCOPFStructure.digest()`` of the task.
    folder : Path
        Where to look (``*.pt`` files written by ``baselines/dcopf_proxy/train.py``).

    Raises
    ------
    MissingDataError
        If no file there records this structure hash.
    """
    seen = []
    for path in sorted(Path(folder).glob("*.pt")):
        meta = torch.load(path, weights_only=True, map_location="cpu")["meta"]
        if meta.get("structure_hash") == structure_hash and meta.get("method") == "dcopf_proxy":
            return path
        seen.append(f"{path.name} ({meta.get('case') or '?'}, {str(meta.get('structure_hash'))[:12]}...)")
    raise MissingDataError(f"no dcopf_proxy weights for structure {structure_hash[:12]}... in {folder}; "
                           f"available: {', '.join(seen) or 'none'}; train with python -m "
                           "baselines.dcopf_proxy.train --dataset FILE")


def load_model(path: Path, structure, method: str | None = None) -> tuple[DCOPFProxy, dict]:
    """Rebuild the proxy stored in ``path`` for ``structure`` (``method`` overrides the projection's)."""
    blob = torch.load(path, weights_only=True, map_location="cpu")
    meta = blob["meta"]
    state = blob["state_dict"]
    model = DCOPFProxy(structure, state["x_mean"].numpy(), state["x_std"].numpy(), list(meta["hidden"]),
                       method or str(meta["shift_method"]), int(meta["iterations"]))
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

    def skip(self, spec):
        if spec.family != "dcopf":
            return True, f"trained for dcopf only, not {spec.family!r}"
        return False, None

    def setup(self, spec, train_set) -> None:
        path = find_weights(spec.structure.digest(), Path(self.weights_dir))
        self.model, meta = load_model(path, spec.structure)
        self.frozen = FrozenProxy(self.model)
        self.version = f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']})"

    def solve(self, params) -> Prediction:
        return Prediction(y=self.frozen(np.asarray(params["pd"], dtype=np.float64)))
