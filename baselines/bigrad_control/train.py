"""Train a reference method on an ``adv-control`` instance set::

    python -m baselines.bigrad_control.train --dataset data/adv-control-T5.h5 --method bigrad

Methods (every one the same policy network, :class:`baselines.bigrad_control.layer.Policy`):

* ``bigrad``: the leader's true cost ``J(U, W*(U))`` with the adversary as an implicit layer (BiGrad's continuous
  hypergradient); needs no labels;
* ``two-step``: the same loss and forward pass, the adversary held fixed in the backward pass;
* ``nominal``: the leader's cost with no adversary at all (``W = 0``): what ignoring the lower level gives;
* ``sl``: supervised, the mean squared error to the certified controls (needs labels).

The epoch kept is the one with the lowest mean relative gap on the valid split (the adversary re-solved, against
the certified labels). Writes ``<weights-dir>/<dataset name>-<method>.pt`` (state dict + meta, loaded with
``weights_only=True``) and ``.json`` (meta, the kept epoch's valid metrics, the history).
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

from baselines.bigrad_control.layer import AdversaryLayer, Matrices, Policy
from baselines.weights import labelled
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.families.advctl import problem

log = logging.getLogger(__name__)
WEIGHTS = Path(__file__).resolve().parent / "weights"
METHODS = ("bigrad", "two-step", "nominal", "sl")


def valid_metrics(s, net: Policy, params: dict, labels: dict) -> dict:
    """Mean cost and relative gap of the policy on a split, the adversary re-solved."""
    net.eval()
    with torch.no_grad():
        U = net(torch.from_numpy(params["x0"]), torch.from_numpy(params["target"])).numpy()
    cost, _ = problem.true_cost(s, params["x0"], params["target"], U)
    ref = np.asarray(labels["objective"], float)
    gap = (cost - ref) / np.maximum(np.abs(ref), 1e-9)
    return {"n": len(cost), "cost_mean": float(cost.mean()), "gap_mean": float(gap.mean()),
            "gap_max": float(gap.max())}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m baselines.bigrad_control.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", type=Path, required=True, help="an adv-control instance set")
    p.add_argument("--method", choices=METHODS, required=True, help="bigrad, two-step, nominal or sl")
    p.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    p.add_argument("--epochs", type=int, default=300, help="passes over the train instances (default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's initial learning rate, annealed to 0 over the "
                   "epochs on a cosine (default 1e-3)")
    p.add_argument("--fresh", action=argparse.BooleanOptionalAction, default=True,
                   help="self-supervised methods draw new instances every epoch from the set's distribution "
                   "(the family's sample(); default on; --no-fresh reuses the train split)")
    p.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers (default 256)")
    p.add_argument("--weights-dir", type=Path, default=WEIGHTS, help="where weight files go")
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
    if ds.family != "adv-control":
        raise UsageError(f"{args.dataset}: bigrad_control trains on adv-control sets, not {ds.family!r}")
    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError(f"--epochs and --batch-size must be >= 1, received {args.epochs} and {args.batch_size}")
    s = ds.structure
    p_tr, l_tr = labelled(ds.split("train"))
    p_va, l_va = labelled(ds.split("valid"))
    if len(l_tr["objective"]) == 0 or len(l_va["objective"]) == 0:
        raise UsageError(f"{args.dataset}: training needs labelled train and valid instances")
    net = Policy(s, args.hidden).double()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    mats = Matrices(s)
    x0, target = torch.from_numpy(p_tr["x0"]), torch.from_numpy(p_tr["target"])
    u_star = torch.from_numpy(np.asarray(l_tr["u"], float))
    name = str(ds.meta.get("name") or Path(args.dataset).stem)
    out = Path(args.weights_dir) / f"{name}-{args.method}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"method": args.method, "family": "adv-control", "structure_hash": s.digest(), "dataset": name,
            "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "hidden": args.hidden, "fresh": bool(args.fresh and args.method != "sl"), "n_train": int(x0.shape[0]),
            "n_valid": len(l_va["objective"])}
    history, best = [], (np.inf, None, 0, None)
    n = x0.shape[0]
    bar = tqdm(range(1, args.epochs + 1), desc=f"{args.method} {name}", disable=args.quiet, file=sys.stderr)
    for epoch in bar:
        net.train()
        if args.fresh and args.method != "sl":      # self-supervised: new draws from the set's distribution
            draw = ds.family_descriptor.sample(ds, rng, n)
            x0, target = torch.from_numpy(draw["x0"]), torch.from_numpy(draw["target"])
        order = rng.permutation(n)
        losses, seconds = [], 0.0
        for lo in range(0, n, args.batch_size):
            idx = torch.from_numpy(order[lo: lo + args.batch_size])
            t0 = time.perf_counter()
            U = net(x0[idx], target[idx])
            if args.method == "sl":
                loss = ((U - u_star[idx]) ** 2).mean()
            else:
                if args.method == "nominal":
                    W = torch.zeros(len(idx), s.n_disturbances, dtype=torch.float64)
                else:
                    mode = "implicit" if args.method == "bigrad" else "fixed"
                    W = AdversaryLayer.apply(U, x0[idx], target[idx], s, mode)
                loss = mats.cost(x0[idx], U, W).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            seconds += time.perf_counter() - t0
            losses.append(float(loss.detach()))
        schedule.step()
        valid = valid_metrics(s, net, p_va, l_va)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "step_seconds_per_sample": seconds / n,
               **{f"valid_{k}": v for k, v in valid.items()}}
        history.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.4g}", gap=f"{valid['gap_mean']:.4f}")
        log.info("epoch %d: %s", epoch, row)
        if valid["gap_mean"] < best[0]:
            best = (valid["gap_mean"], {k: v.clone() for k, v in net.state_dict().items()}, epoch, valid)
    meta["selected_epoch"] = best[2]
    torch.save({"state_dict": best[1], "meta": meta}, out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "valid": best[3], "history": history},
                                                   indent=1) + "\n")
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
