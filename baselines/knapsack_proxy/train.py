"""Train the knapsack proxy on one knapsack data set::

    python -m baselines.knapsack_proxy.train --dataset data/knapsack-20x2.h5 --seed 0

Model: capacities normalised by the train split's mean and std -> MLP (ReLU; default 2 x 32) -> item scores ``z``
-> greedy repair (items in index order, taken when ``z_j > 0`` and they still fit; see
``baselines/knapsack_proxy/solver.py``). Every output is binary and within capacity.

Supervised: binary cross-entropy of ``z`` (as logits) against the certified label ``y*`` on the train split (the
repair is not differentiable and is not trained through). Adam, a fixed number of epochs. After every epoch the
valid split is scored *after the repair*, as the evaluator scores it (``(f* - v . y) / max(1, |f*|)``), and the
epoch with the lowest mean valid gap is kept. The test split is never read.

Writes ``<weights-dir>/<dataset name>.pt`` (state dict + meta; load with ``torch.load(..., weights_only=True)``)
and ``.json`` (meta, the kept epoch's valid metrics, per-epoch history). Same command, same weights: seeded torch
and shuffling, deterministic algorithms, one thread by default.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from baselines.knapsack_proxy.solver import METHOD, WEIGHTS, FrozenNet
from bilevelbench.core.statuses import SOLUTION_STATUSES
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.evaluate.provenance import file_sha256
from bilevelbench.verification.graph import greedy_repair

log = logging.getLogger("knapsack_proxy.train")


class KnapsackMLP(nn.Module):
    """``(c - mean) / std`` -> Linear / ReLU layers -> item scores (logits); the normalisation is stored as
    float64 buffers, the layers in float32."""

    def __init__(self, x_mean: np.ndarray, x_std: np.ndarray, n_items: int, hidden: list[int]) -> None:
        super().__init__()
        self.register_buffer("x_mean", torch.tensor(np.asarray(x_mean, dtype=np.float64)))
        self.register_buffer("x_std", torch.tensor(np.maximum(np.asarray(x_std, dtype=np.float64), 1e-12)))
        widths = [int(self.x_mean.shape[0]), *hidden, n_items]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)

    def forward(self, capacity: torch.Tensor) -> torch.Tensor:
        return self.mlp(((capacity - self.x_mean) / self.x_std).float())


def dataset_name(ds: InstanceSet, path: Path) -> str:
    """The data set's recorded name, or the file's stem."""
    return str(ds.meta.get("name") or Path(path).stem)


def labelled(split: InstanceSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capacities, labels ``y*`` and objectives of the split's instances whose label stores a solution."""
    ok = np.isin(np.asarray(split.labels["status"]).astype(str), SOLUTION_STATUSES)
    return (np.asarray(split.params["capacity"], float)[ok], np.asarray(split.labels["y"], float)[ok],
            np.asarray(split.labels["objective"], float)[ok])


def evaluate(net: FrozenNet, s, capacity: np.ndarray, f_star: np.ndarray) -> dict:
    """Metrics of the repaired answers on a split, as the evaluator computes them (every answer is feasible)."""
    y = greedy_repair(net.scores(capacity), s.weight.astype(np.float64), capacity)
    gap = (f_star - y @ s.value) / np.maximum(1.0, np.abs(f_star))
    feasible = np.all(y @ s.weight.T <= capacity, axis=1)
    return {"n": int(capacity.shape[0]), "gap_mean": float(np.mean(gap)), "gap_median": float(np.median(gap)),
            "gap_max": float(np.max(gap)), "optimal_rate": float(np.mean(gap <= 1e-9)),
            "feasible_rate": float(np.mean(feasible))}


HISTORY_FIELDS = ("epoch", "train_loss", "train_gap_mean", "valid_gap_mean", "valid_gap_max", "valid_optimal_rate",
                  "seconds")


def write_report(path: Path, meta: dict, valid: dict, history: list[dict]) -> None:
    """Write the training report: meta, the kept epoch's valid metrics, and a compact per-epoch history."""
    def short(value):
        return float(f"{value:.6g}") if isinstance(value, float) and math.isfinite(value) else value
    compact = [json.dumps({k: short(r[k]) for k in HISTORY_FIELDS if k in r}) for r in history]
    head = json.dumps({"meta": meta, "valid": valid}, indent=1)[:-2]
    path.write_text(head + ',\n "history": [\n  ' + ",\n  ".join(compact) + "\n ]\n}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m baselines.knapsack_proxy.train``."""
    parser = argparse.ArgumentParser(prog="python -m baselines.knapsack_proxy.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="knapsack instance set")
    parser.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=300, help="passes over the train split (default 300)")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    parser.add_argument("--hidden", type=str, default="32,32", help="hidden widths (default 2 x 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS,
                        help="folder of the weight files (default baselines/knapsack_proxy/weights)")
    parser.add_argument("--out", type=Path, default=None, help="weights file (default <weights-dir>/<name>.pt)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    return parser


def train(args: argparse.Namespace) -> Path:
    """Train on ``args.dataset``; write ``<out>.pt`` (state dict and meta) and ``<out>.json``; return the path.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed :func:`build_parser` arguments.

    Returns
    -------
    Path
        The weights file.

    Raises
    ------
    UsageError
        If the file is not a knapsack set, or its train or valid split has no labelled instance.
    """
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(args)
    finally:                                   # leave the process's torch settings as they were
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    ds = InstanceSet.open(args.dataset)
    if ds.family != "knapsack":
        raise UsageError(f"{args.dataset} holds family {ds.family!r}; knapsack_proxy trains on knapsack data sets")
    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError(f"--epochs and --batch-size must be >= 1, got {args.epochs} and {args.batch_size}")
    s = ds.structure
    c_tr, y_tr, f_tr = labelled(ds.split("train"))
    c_va, _, f_va = labelled(ds.split("valid"))
    if c_tr.shape[0] == 0 or c_va.shape[0] == 0:
        raise UsageError(f"{args.dataset}: training needs labelled train and valid instances; found "
                         f"{c_tr.shape[0]} and {c_va.shape[0]}")
    hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    model = KnapsackMLP(c_tr.mean(0), c_tr.std(0), s.n_items, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    x, target = torch.tensor(c_tr), torch.tensor(y_tr, dtype=torch.float32)
    name = dataset_name(ds, args.dataset)
    out = args.out or Path(args.weights_dir) / f"{name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    n = c_tr.shape[0]
    history: list[dict] = []
    best: tuple[float, dict | None, int] = (float("inf"), None, 0)
    start = time.perf_counter()
    bar = tqdm(range(1, args.epochs + 1), desc=f"knapsack_proxy {name}", disable=args.quiet, file=sys.stderr)
    for epoch in bar:
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        total = 0.0
        for lo in range(0, n, args.batch_size):
            idx = order[lo: lo + args.batch_size]
            loss = loss_fn(model(x[idx]), target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        net = FrozenNet.from_state(state)
        valid = evaluate(net, s, c_va, f_va)
        record = {"epoch": epoch, "train_loss": total / n, "train_gap_mean": evaluate(net, s, c_tr, f_tr)["gap_mean"],
                  **{f"valid_{k}": v for k, v in valid.items()}, "seconds": time.perf_counter() - start}
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", gap=f"{valid['gap_mean']:.2e}")
        if valid["gap_mean"] < best[0]:
            best = (valid["gap_mean"], state, epoch)
    train_seconds = time.perf_counter() - start
    meta = {"method": METHOD, "structure_hash": s.digest(), "family": ds.family, "dataset": name, "size": s.size,
            "dataset_sha256": file_sha256(args.dataset), "hidden": hidden, "loss": "binary cross-entropy vs y*",
            "repair": "greedy in index order (value density)", "lr": args.lr, "weight_decay": args.weight_decay,
            "batch_size": args.batch_size, "epochs": args.epochs, "select": "lowest mean valid gap after repair",
            "selected_epoch": best[2], "train_instances": int(n), "seed": args.seed, "threads": args.threads,
            "train_seconds": train_seconds, "torch": str(torch.__version__)}
    torch.save({"state_dict": best[1], "meta": meta}, out)
    kept = history[best[2] - 1]
    summary = {k[len("valid_"):]: v for k, v in kept.items() if k.startswith("valid_")}
    write_report(out.with_suffix(".json"), meta, summary, history)
    log.info("wrote %s (epoch %d kept: valid gap mean %.3e, max %.3e; %.0f s)", out, best[2], summary["gap_mean"],
             summary["gap_max"], train_seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, train, write the weights."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
