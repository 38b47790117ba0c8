"""Train the end-to-end feasible DC-OPF proxy (Chen, Tanneau and Van Hentenryck) on one dcopf data set::

    python -m baselines.dcopf_proxy.train --dataset data/dcopf-case118.h5 --seed 0

Model: MLP (ReLU) on loads normalised by the train split's mean and std -> bound clamp
``pmin + (pmax - pmin) sigmoid(raw)`` -> hypersimplex projection (one shift of every generator, clipped to its
limits, so that generation meets demand; bisection, gradient by the implicit function theorem); see
bilevelbench/families/dcopf/proxy.py. Every output meets power balance and the generator limits.

Self-supervised loss (no labels): the mean over a batch of the dispatch's own objective

    cost(pg) + M * sum_l max(0, |f_l(pg, pd)| - rate_l)

(flows from a dense PTDF), divided by a label-free scale: the mean generation cost, over the train split, of
the proportional dispatch ``pmin + (D - sum pmin) / sum(pmax - pmin) * (pmax - pmin)``. Adam, a fixed number
of epochs, optional cosine decay of the learning rate. After every epoch the valid split is scored against its
certified labels (labels are used for model selection only); the epoch with the lowest mean valid gap is
kept (``--select last`` keeps the final one). The test split is never read.

Writes ``<weights-dir>/<dataset name>.pt`` (state dict + meta; load with ``torch.load(..., weights_only=True)``)
and ``.json`` (meta, the kept epoch's valid metrics, per-epoch history). Same command, same weights: seeded
torch and shuffling, deterministic algorithms, one thread by default.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.evaluate.provenance import file_sha256
from bilevelbench.families.dcopf.problem import DCOPFStructure, sample_loads
from bilevelbench.families.dcopf.proxy import (
    CLAMPS,
    DEFAULT_ITERATIONS,
    SHIFT_METHODS,
    DCOPFObjective,
    DCOPFProxy,
    dense_ptdf,
)

log = logging.getLogger("dcopf_proxy.train")

WEIGHTS = Path(__file__).resolve().parent / "weights"
CERTIFIED = "certified_optimal"



def dataset_name(ds: InstanceSet, path: Path) -> str:
    """The data set's recorded name, or the file's stem (``data/dcopf-case118.h5`` -> ``dcopf-case118``)."""
    return str(ds.meta.get("name") or Path(path).stem)


def loss_scale(s: DCOPFStructure, pd: np.ndarray) -> float:
    """Label-free objective scale: mean generation cost of the proportional dispatch over ``pd`` (n, nb)."""
    demand = pd.sum(1) + s.gs.sum()
    room = float(np.sum(s.pmax - s.pmin))
    share = np.clip((demand - s.pmin.sum()) / max(room, 1e-9), 0.0, 1.0)
    pg = s.pmin[None] + share[:, None] * (s.pmax - s.pmin)[None]
    return float(max(np.mean(np.abs(s.generation_cost(pg))), 1e-6))


def evaluate(model: DCOPFProxy, s: DCOPFStructure, pd: np.ndarray, f_star: np.ndarray) -> dict:
    """Metrics of the model's dispatches on a split, scored as the evaluator does (sparse flows, NumPy)."""
    model.eval()
    start = time.perf_counter()
    pg = model.predict(pd)
    seconds = time.perf_counter() - start
    obj = s.objective(pg, pd)
    xi = s.thermal_violation(s.flows(pg, pd)).sum(1)
    ok = np.isfinite(f_star)
    gap = np.abs(obj[ok] - f_star[ok]) / np.maximum(np.abs(f_star[ok]), 1e-6)
    demand = np.abs(pd).sum(1) + np.abs(s.gs).sum()
    return {"n": int(pd.shape[0]), "gap_mean": float(np.mean(gap)) if gap.size else float("nan"),
            "gap_median": float(np.median(gap)) if gap.size else float("nan"),
            "gap_max": float(np.max(gap)) if gap.size else float("nan"),
            "objective_mean": float(np.mean(obj)),
            "balance_violation_max_relative": float(np.max(np.abs(s.balance_residual(pg, pd)) / (1.0 + demand))),
            "generator_violation_max": float(np.max(s.bound_violation(pg))),
            "thermal_violation_mw_mean": float(np.mean(xi)), "thermal_violation_rate": float(np.mean(xi > 1e-6)),
            "ms_per_instance": 1e3 * seconds / max(1, pd.shape[0])}


#: Per-epoch fields kept in the ``.json`` history (the kept epoch's ``valid`` block has every metric).
HISTORY_FIELDS = ("epoch", "train_loss", "train_cost", "train_thermal_mw", "valid_gap_mean", "valid_gap_median",
                  "valid_gap_max", "valid_thermal_violation_mw_mean", "valid_thermal_violation_rate", "seconds")


def write_report(path: Path, meta: dict, valid: dict, history: list[dict]) -> None:
    """Write the training report: meta, the kept epoch's valid metrics, and a compact per-epoch history
    (:data:`HISTORY_FIELDS`, 6 significant digits)."""
    def short(value):
        return float(f"{value:.6g}") if isinstance(value, float) and math.isfinite(value) else value
    compact = [json.dumps({k: short(r[k]) for k in HISTORY_FIELDS if k in r}) for r in history]
    head = json.dumps({"meta": meta, "valid": valid}, indent=1)[:-2]     # without the closing "\n}"
    path.write_text(head + ',\n "history": [\n  ' + ",\n  ".join(compact) + "\n ]\n}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m baselines.dcopf_proxy.train``."""
    parser = argparse.ArgumentParser(prog="python -m baselines.dcopf_proxy.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="dcopf instance set (bilevelbench generate dcopf)")
    parser.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=200, help="passes over the train split (default 200)")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="cosine",
                        help="learning-rate schedule over the epochs: constant, or cosine decay to lr/100 "
                        "(default cosine)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    parser.add_argument("--hidden", type=str, default="256,256,256", help="hidden widths (default 3 x 256)")
    parser.add_argument("--method", choices=SHIFT_METHODS, default="bisection",
                        help="how training finds the projection's shift: bisection (the paper's binary search, "
                        "default) or sort (exact, from the sorted breakpoints; same function)")
    parser.add_argument("--clamp", choices=CLAMPS, default="sigmoid",
                        help="bound clamp: sigmoid (the paper's) or hard (piecewise linear: the proxy can be "
                             "verified with bilevelbench verify-proxy); default sigmoid")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                        help=f"bisection steps (default {DEFAULT_ITERATIONS})")
    parser.add_argument("--scale", type=float, default=0.0,
                        help="divide the loss by this ($); 0: the label-free scale of loss_scale (default)")
    parser.add_argument("--margin", type=float, default=0.0,
                        help="train against thermal limits tightened to (1 - MARGIN) * rate, so that the proxy "
                        "keeps a little room on lines that bind; scoring always uses the true limits (default 0)")
    parser.add_argument("--fresh-loads", action="store_true",
                        help="train on new loads every epoch, drawn (train-split size, own seed stream) from the "
                        "sampler the data set records in its metadata, instead of on the train split's loads: "
                        "self-supervision needs no labels, so unlimited data is free (off by default; the "
                        "input normalisation still comes from the train split)")
    parser.add_argument("--select", choices=("best", "last"), default="best",
                        help="keep the epoch with the lowest mean valid gap (default) or the last one")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train instances (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS,
                        help="folder of the weight files (default baselines/dcopf_proxy/weights)")
    parser.add_argument("--out", type=Path, default=None,
                        help="weights file (default <weights-dir>/<dataset name>.pt)")
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
    family = str(ds.meta.get("family"))
    if family != "dcopf":
        raise UsageError(f"{args.dataset} holds family {family!r}; dcopf_proxy trains on dcopf data sets")
    s: DCOPFStructure = ds.structure
    train_split, valid = ds.split("train"), ds.split("valid")
    pd_all = np.asarray(train_split.params["pd"], float)
    if args.train_limit:
        pd_all = pd_all[: args.train_limit]
    n = pd_all.shape[0]
    if n == 0:
        raise UsageError(f"{args.dataset}: the train split is empty")
    hidden = [int(h) for h in args.hidden.split(",") if h.strip()]
    model = DCOPFProxy(s, pd_all.mean(0), pd_all.std(0), hidden, args.method, args.iterations, args.clamp)
    if not 0.0 <= args.margin < 1.0:
        raise UsageError(f"--margin must be in [0, 1), got {args.margin}")
    objective = DCOPFObjective(s, dense_ptdf(s), margin=args.margin)
    scale = float(args.scale) if args.scale > 0 else loss_scale(s, pd_all)
    pd_tr = torch.tensor(pd_all)
    with torch.no_grad():
        base_tr = objective.base_flows(pd_tr)            # flows without generation: fixed per instance
    sampling = dict(ds.meta.get("sampling") or {})
    if args.fresh_loads and not {"load_scale", "load_noise"} <= set(sampling):
        raise UsageError(f"{args.dataset} records no load sampler (meta 'sampling'); --fresh-loads needs one")
    fresh_rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(7,)))
    pd_va = np.asarray(valid.params["pd"], float)
    status = np.asarray(valid.labels["status"]).astype(str)
    f_va = np.where(status == CERTIFIED, np.asarray(valid.labels["objective"], float), np.nan)
    if pd_va.shape[0] == 0 or not np.any(np.isfinite(f_va)):
        raise UsageError(f"{args.dataset}: the valid split has no certified labels to select an epoch with")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    name = dataset_name(ds, args.dataset)
    out = args.out or Path(args.weights_dir) / f"{name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    history: list[dict] = []
    best: tuple[float, dict | None, int] = (float("inf"), None, 0)
    steps_per_epoch = math.ceil(n / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    step = 0
    start = time.perf_counter()
    bar = tqdm(range(1, args.epochs + 1), desc=f"dcopf_proxy {name}", disable=args.quiet, file=sys.stderr)
    for epoch in bar:
        model.train()
        if args.fresh_loads:
            pd_tr = torch.tensor(sample_loads(s, fresh_rng, n, tuple(sampling["load_scale"]),
                                              float(sampling["load_noise"])))
            with torch.no_grad():
                base_tr = objective.base_flows(pd_tr)
        order = torch.from_numpy(rng.permutation(n))
        sums = {"loss": 0.0, "cost": 0.0, "thermal_mw": 0.0}
        for lo in range(0, n, args.batch_size):
            if args.schedule == "cosine":
                lr = args.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total_steps))))
                for group in opt.param_groups:
                    group["lr"] = lr
            idx = order[lo: lo + args.batch_size]
            pg = model(pd_tr[idx])
            obj, cost, xi = objective(pg, base=base_tr[idx])
            loss = obj.mean() / scale
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            k = len(idx)
            sums["loss"] += float(loss.detach()) * k
            sums["cost"] += float(cost.detach().mean()) * k
            sums["thermal_mw"] += float(xi.detach().mean()) * k
        metrics = evaluate(model, s, pd_va, f_va)
        record = {"epoch": epoch, **{f"train_{k}": v / n for k, v in sums.items()},
                  **{f"valid_{k}": v for k, v in metrics.items()}, "seconds": time.perf_counter() - start}
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", gap=f"{metrics['gap_mean']:.2e}")
        log.debug("epoch %d: loss %.5f | valid gap mean %.3e max %.3e, overload %.3f MW", epoch,
                  record["train_loss"], metrics["gap_mean"], metrics["gap_max"], metrics["thermal_violation_mw_mean"])
        if args.select == "last" or metrics["gap_mean"] < best[0]:
            best = (metrics["gap_mean"], {k: v.detach().clone() for k, v in model.state_dict().items()}, epoch)
    train_seconds = time.perf_counter() - start
    state = {k: (v.float() if k.startswith("mlp.") else v) for k, v in best[1].items()}
    meta = {"method": "dcopf_proxy", "structure_hash": s.digest(), "family": family, "dataset": name,
            "case": s.case, "size": s.size, "dataset_sha256": file_sha256(args.dataset), "hidden": hidden,
            "shift_method": args.method, "clamp": args.clamp, "iterations": int(args.iterations), "loss_scale": scale,
            "margin": args.margin, "fresh_loads": bool(args.fresh_loads),
            "lr": args.lr, "schedule": args.schedule, "weight_decay": args.weight_decay,
            "batch_size": args.batch_size, "epochs": args.epochs, "select": args.select,
            "selected_epoch": best[2], "train_instances": int(n), "train_limit": int(args.train_limit),
            "seed": args.seed, "threads": args.threads, "train_seconds": train_seconds,
            "torch": str(torch.__version__)}
    torch.save({"state_dict": state, "meta": meta}, out)
    kept = history[best[2] - 1]
    summary = {k[len("valid_"):]: v for k, v in kept.items() if k.startswith("valid_")}
    write_report(out.with_suffix(".json"), meta, summary, history)
    log.info("wrote %s (epoch %d kept: valid gap mean %.3e, max %.3e; %.0f s)", out, best[2],
             summary["gap_mean"], summary["gap_max"], train_seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, train, write the weights."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
