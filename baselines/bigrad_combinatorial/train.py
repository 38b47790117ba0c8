"""Train one reference method on an ``spi-grid`` or ``tsp-interdiction`` set::

    python -m baselines.bigrad_combinatorial.train --dataset data/spi-grid-12.h5 --method bb --seed 0

Methods (``estimators.py``): ``bb`` BiGrad(BB), eq. 8; ``pt`` BiGrad(PT), eq. 9; ``bb1`` / ``pt1`` the
single-level versions (the leader held at the label, only the follower differentiated); ``sl`` supervised scores
(binary cross-entropy against the label's interdiction or removal).

Loss (bb, pt): the per-sample Hamming loss of the leader's decision plus that of the follower's solution (path
tiles, tour edges) against the labels, averaged over the batch; (bb1, pt1): the follower's term only. Adam.
After every epoch the valid split is answered as the evaluator would (predicted costs -> exact leader; SL: top B)
and the follower is re-solved at the **true** costs: the epoch with the lowest mean valid regret is kept. The
test split is never read.

Writes ``<weights-dir>/<dataset name>-<method>.pt`` (state dict + meta) and ``.json`` (meta, the kept epoch's
valid metrics, per-epoch history with the mean seconds per training step). Seeded torch and shuffling.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from baselines.bigrad_combinatorial import model
from baselines.bigrad_combinatorial.estimators import BilevelLayer, SolvePool, hamming
from baselines.bigrad_combinatorial.tasks import task_for
from baselines.weights import labelled
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError

log = logging.getLogger("bigrad_combinatorial.train")
#: Default interpolation strength lam of the BB estimator, per family (the scale of a cost change that flips
#: a decision: tile costs 0.8 .. 9.2; distances 1 .. 130).
DEFAULT_LAM = {"spi-grid": 5.0, "tsp-interdiction": 20.0}


def default_lr(family: str, method: str) -> float:
    """Adam's default step: 1e-3 for the CNNs; for the city positions (distances of tens) 0.3, 1e-2 for SL."""
    if family == "spi-grid":
        return 1e-3
    return 1e-2 if method == "sl" else 0.3


def valid_metrics(task, net, method: str, params: dict, labels: dict) -> dict:
    """Mean regret and Hamming of the leader's decision on a split, with the follower at the true costs."""
    net.eval()
    x = model.decide(task, net, method, params)
    x_star, _ = task.targets(labels)
    f_star = np.asarray(labels["objective"], float)
    value = np.array([task.true_value(params, i, x[i]) for i in range(len(x))])
    regret = (f_star - value) / np.abs(f_star)
    return {"n": len(x), "regret_mean": float(np.mean(regret)), "regret_max": float(np.max(regret)),
            "optimal_rate": float(np.mean(regret <= 1e-9)),
            "hamming_mean": float(np.mean(np.abs(x - x_star).reshape(len(x), -1).mean(1)))}


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m baselines.bigrad_combinatorial.train``."""
    p = argparse.ArgumentParser(prog="python -m baselines.bigrad_combinatorial.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="spi-grid or tsp-interdiction instance set")
    p.add_argument("--method", choices=model.METHODS, required=True, help="bb, pt, bb1, pt1 or sl")
    p.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the train instances (default 10)")
    p.add_argument("--n-train", type=int, default=None, help="use the first N labelled train instances (all)")
    p.add_argument("--n-valid", type=int, default=100, help="valid instances for model selection (default 100)")
    p.add_argument("--batch-size", type=int, default=16, help="default 16")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: default_lr)")
    p.add_argument("--lam", type=float, default=None, help="BB interpolation strength (default 5 spi-grid, 20 tsp)")
    p.add_argument("--workers", type=int, default=2, help="processes for the solver calls (default 2)")
    p.add_argument("--weights-dir", type=Path, default=model.WEIGHTS, help="where weight files go")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def train(args: argparse.Namespace) -> Path:
    """Train and write the weight file; returns its path.

    Raises
    ------
    UsageError
        On a data set of another family, bad counts, or a split without labelled instances.
    """
    from tqdm import tqdm

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    ds = InstanceSet.open(args.dataset)
    task = task_for(ds.family, ds.structure)
    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError(f"--epochs and --batch-size must be >= 1, received {args.epochs} and {args.batch_size}")
    p_tr, l_tr = labelled(ds.split("train"), args.n_train)
    p_va, l_va = labelled(ds.split("valid"), args.n_valid)
    if len(l_tr["objective"]) == 0 or len(l_va["objective"]) == 0:
        raise UsageError(f"{args.dataset}: training needs labelled train and valid instances")
    lam = args.lam if args.lam is not None else DEFAULT_LAM[task.family]
    lr = args.lr if args.lr is not None else default_lr(task.family, args.method)
    net = model.build(task, args.method, p_tr)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    inputs, contexts = task.inputs(p_tr), task.contexts(p_tr)
    x_star, y_star = (torch.from_numpy(a) for a in task.targets(l_tr))
    name = str(ds.meta.get("name") or Path(args.dataset).stem)
    out = Path(args.weights_dir) / f"{name}-{args.method}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"method": args.method, "family": task.family, "structure_hash": ds.structure.digest(),
            "dataset": name, "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": lr,
            "lam": lam, "n_train": len(l_tr["objective"]), "n_valid": len(l_va["objective"])}
    pool = SolvePool(args.workers)
    history, best = [], (np.inf, None, 0, None)
    n = inputs.shape[0]
    try:
        bar = tqdm(range(1, args.epochs + 1), desc=f"{args.method} {name}", disable=args.quiet, file=sys.stderr)
        for epoch in bar:
            net.train()
            order = rng.permutation(n)
            losses, step_times = [], []
            for lo in range(0, n, args.batch_size):
                idx = order[lo: lo + args.batch_size]
                t0 = time.perf_counter()
                out_net = net(inputs[idx])
                if args.method == "sl":
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(out_net, x_star[idx].float())
                else:
                    fixed = x_star[idx].numpy() if args.method in ("bb1", "pt1") else None
                    mode = args.method
                    x, y = BilevelLayer.apply(out_net.double(), task, pool, [contexts[i] for i in idx], mode, lam,
                                              fixed)
                    per = hamming(y, y_star[idx])
                    if fixed is None:
                        per = per + hamming(x, x_star[idx])
                    loss = per.mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                step_times.append(time.perf_counter() - t0)
                losses.append(float(loss.detach()))
            valid = valid_metrics(task, net, args.method, p_va, l_va)
            row = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                   "step_seconds_per_sample": float(np.sum(step_times) / n), **{f"valid_{k}": v for k, v in
                                                                               valid.items()}}
            history.append(row)
            bar.set_postfix(loss=f"{row['train_loss']:.3g}", regret=f"{valid['regret_mean']:.4f}")
            log.info("epoch %d: %s", epoch, row)
            if valid["regret_mean"] < best[0]:
                best = (valid["regret_mean"], {k: v.clone() for k, v in net.state_dict().items()}, epoch, valid)
    finally:
        pool.close()
    meta["selected_epoch"] = best[2]
    torch.save({"state_dict": best[1], "meta": meta}, out)
    report = {"meta": meta, "valid": best[3], "history": history}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
        path = train(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
