"""The solver of the MIQP baselines: the trained integer network, then the relaxed QP for the continuous part.

``setup`` loads the weight file in the baseline's ``weights/`` whose recorded structure hash matches the task,
preferring one trained on the task's data set (``torch.load(..., weights_only=True)``); ``solve`` returns the full decision ``x`` (B, n): integers rounded to
exact integers, continuous part from the relaxed QP (:meth:`RelaxedMIQPLayer.solve_exact`: OSQP with polishing,
answers checked against the KKT conditions, :class:`BatchedQP` for the rows that fail the check).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.weights import scan_weights
from bilevelbench.errors import MissingDataError
from bilevelbench.families.mimpc.miqp_l2o import MIQPL2O
from bilevelbench.solvers import Prediction
from bilevelbench.solvers import Solver as _Base

FAMILIES = ("mimpc-robot", "mimpc-tank")


def find_weights(structure_hash: str, folder: Path, method: str, dataset: str | None = None) -> Path:
    """The weight file of ``method`` trained on this structure, or a clear error listing what exists.

    Where several files match (``mimpc-robot-authors`` and ``mimpc-robot-authors-20k`` share a structure), the
    one trained on ``dataset`` (its meta's ``dataset``) is taken; otherwise the first match by file name.
    """
    def matches(meta: dict) -> bool:
        return meta["structure_hash"] == structure_hash and meta.get("method") == method

    if dataset is not None:
        found, _ = scan_weights(folder, lambda meta: matches(meta) and meta.get("dataset") == dataset,
                                lambda path, meta: path.name)
        if found is not None:
            return found
    found, seen = scan_weights(folder, matches, lambda path, meta: f"{path.name} ({meta['structure_hash'][:12]}...)")
    if found is not None:
        return found
    raise MissingDataError(f"no miqp_{method} weights for structure {structure_hash[:12]}... in {folder}; "
                           f"available: {', '.join(seen) or 'none'}; train with python -m baselines.miqp_{method}"
                           ".train --dataset FILE")


def load_model(path: Path, structure) -> tuple[MIQPL2O, dict]:
    """Rebuild the model stored in ``path`` for ``structure``."""
    blob = torch.load(path, weights_only=True, map_location="cpu")
    meta = blob["meta"]
    p = structure.p
    model = MIQPL2O(structure, np.zeros(p), np.ones(p), list(meta["hidden"]), rho=float(meta["rho"]),
                    slack=str(meta.get("slack", "step")))
    model.policy.load_state_dict(blob["state_dict"])
    model.eval()
    return model, meta


class MIQPBaseline(_Base):
    """Shared by ``miqp_sl``, ``miqp_ssl`` and ``miqp_hybrid`` (they differ by ``method`` and weights)."""

    method = "hybrid"
    weights_dir = Path(__file__).resolve().parent
    #: False: the paper's method as published, the network's integers as they are (no test-time repair).
    repairs = True

    def skip(self, spec):
        return (spec.family not in FAMILIES, f"trained for {', '.join(FAMILIES)} only, not {spec.family!r}")

    def setup(self, spec, train_set) -> None:
        path = find_weights(spec.structure.digest(), Path(self.weights_dir), self.method, spec.dataset)
        self.model, meta = load_model(path, spec.structure)
        #: Test-time repair budget chosen on the valid split by the training command (0: none).
        self.repair = int(meta.get("repair", 0)) if self.repairs else 0
        #: Whether the step moves are tried too (also chosen on valid; absent in older weight files).
        self.moves = bool(meta.get("moves", False)) and self.repairs
        self.version = (f"1 ({path.name}, seed {meta['seed']}, epoch {meta['selected_epoch']}, "
                        f"repair {self.repair}{', moves' if self.moves else ''})")

    def solve(self, params) -> Prediction:
        theta = np.asarray(params["theta"], dtype=np.float64)
        return Prediction(y=self.model.predict(theta, repair=self.repair, moves=self.moves))
