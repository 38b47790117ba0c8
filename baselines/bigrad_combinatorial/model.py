"""Weight files of ``bigrad_combinatorial``: find, save and load (``torch.load(..., weights_only=True)``), and
the trained model as a decision rule (predict costs or scores, then solve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from baselines.bigrad_combinatorial.tasks import task_for
from baselines.weights import find_weights as shared_find_weights

WEIGHTS = Path(__file__).resolve().parent / "weights"
METHODS = ("bb", "pt", "bb1", "pt1", "sl")


def find_weights(structure_hash: str, method: str, folder: Path = WEIGHTS) -> Path:
    """The weight file trained with ``method`` on this structure, or a clear error listing what exists."""
    return shared_find_weights(folder, structure_hash, method, METHODS, "bigrad_combinatorial")


def build(task, method: str, params: dict | None = None) -> torch.nn.Module:
    """The method's network; ``params`` (the train split's) fix data-dependent constants such as the mean cost."""
    return task.sl_model() if method == "sl" else task.cost_model(params)


def load(path: Path, family: str, structure) -> tuple[object, torch.nn.Module, dict]:
    """Task adapter, network (eval mode) and meta stored in ``path``."""
    blob = torch.load(path, weights_only=True, map_location="cpu")
    meta = blob["meta"]
    task = task_for(family, structure)
    net = build(task, meta["method"])
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return task, net, meta


def decide(task, net: torch.nn.Module, method: str, params: dict) -> np.ndarray:
    """The leader's decisions (B, k, k) for a batch of parameters: predicted costs -> the exact bilevel solver's
    leader (BB, PT, BB-1, PT-1), or predicted scores -> the top-B elements (SL)."""
    with torch.no_grad():
        out = net(task.inputs(params)).double().numpy()
    if method == "sl":
        return task.sl_decision(out)
    contexts = task.contexts(params)
    return np.stack([task.leader(out[i], contexts[i]) for i in range(out.shape[0])])
