"""Training command shared by ``miqp_sl``, ``miqp_ssl`` and ``miqp_hybrid`` (one loss each).

The loss of a batch is (:mod:`bilevelbench.families.mimpc.miqp_l2o`)::

    w_obj * f  +  w_con * penalty * sum_i max(0, g_i)  +  w_sup * BCE(integers, certified label)

``sl`` uses the supervised term only (the relaxed QP completes the continuous part at inference), ``ssl`` the
objective and the penalty through the relaxed QP layer (no labels), ``hybrid`` all three. Adam (lr 1e-3,
weight decay 1e-5), batch 128, 20 epochs, as the authors' code. After every epoch the valid split is scored
(violation rates and gap, :mod:`baselines.miqp_common.metrics`); the weights of the epoch with the lowest
``violation rate + mean gap`` on valid are kept (``--select last`` keeps the final ones). The test split is
never read. A test-time repair budget (:meth:`MIQPL2O.predict`: where the integers need slack, try the
least certain integers rounded the other way, and optionally the step moves of
:func:`~bilevelbench.families.mimpc.miqp_l2o.step_moves`) is then chosen on valid among ``REPAIR_GRID`` by
the same score; ``(0, False)`` is the paper's method as published. Supervised targets are the canonical labels
(:mod:`baselines.miqp_common.labels`) unless ``--labels raw``.

Interrupted runs resume: every epoch ends with a checkpoint ``<out>.partial.pt``
(:mod:`baselines.miqp_common.checkpoint`), and the same command run again continues after the last finished
epoch, with the weights an uninterrupted run would give. A larger ``--epochs`` extends an interrupted run.
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

from baselines.miqp_common.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    pack_warm_starts,
    run_key,
    save_checkpoint,
    unpack_warm_starts,
)
from baselines.miqp_common.labels import canonical_labels
from baselines.miqp_common.metrics import miqp_metrics
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.evaluate.provenance import file_sha256
from bilevelbench.families.mimpc.miqp_l2o import MIQPL2O

log = logging.getLogger("miqp.train")

#: Loss weights (w_obj, w_con, w_sup) of each method.
METHODS = {"sl": (0.0, 0.0, 1.0), "ssl": (1.0, 1.0, 0.0), "hybrid": (1.0, 1.0, 1.0)}
CERTIFIED = "certified_optimal"



def _status(split) -> np.ndarray:
    return np.array([x.decode() if isinstance(x, bytes) else str(x) for x in split.labels["status"]])


#: Test-time repairs tried on the valid split after training, as (single changes, step moves); (0, False) is
#: the network's integers as they are.
REPAIR_GRID = ((0, False), (4, False), (16, False), (0, True), (16, True))


def evaluate(model: MIQPL2O, theta: np.ndarray, f_star: np.ndarray, repair: int = 0, moves: bool = False) -> dict:
    """Metrics of the model's decisions on a split, and the batched time per instance."""
    model.eval()
    start = time.perf_counter()
    X = model.predict(theta, repair=repair, moves=moves)
    seconds = time.perf_counter() - start
    out = miqp_metrics(model.layer.structure, theta, X, f_star)
    out["ms_per_instance"] = 1e3 * seconds / max(1, theta.shape[0])
    return out


def score(metrics: dict) -> float:
    """Valid score the kept epoch minimises: violation rate plus mean gap (a NaN gap counts as 1)."""
    gap = metrics.get("mean_gap", float("nan"))
    return float(metrics["violation_rate"] + (1.0 if not np.isfinite(gap) else gap))


def build_parser(method: str) -> argparse.ArgumentParser:
    w_obj, w_con, w_sup = METHODS[method]
    parser = argparse.ArgumentParser(prog=f"python -m baselines.miqp_{method}.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="mimpc-robot or mimpc-tank instance set")
    parser.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the train split (default 20)")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--weight-decay", type=float, default=1e-5, help="Adam weight decay (default 1e-5)")
    parser.add_argument("--hidden", type=str, default="128,128,128,128", help="hidden widths (default 4 x 128)")
    parser.add_argument("--rho", type=float, default=1e4, help="slack penalty of the relaxed QP (default 1e4)")
    parser.add_argument("--slack", choices=("step", "row"), default="step",
                        help="slack layout of the relaxed QP: one per step (default) or one per row with an "
                        "integer (bilevelbench/families/mimpc/miqp_layer.py)")
    parser.add_argument("--penalty", type=float, default=100.0,
                        help="lambda: weight of the summed row violations in the loss (default 100)")
    parser.add_argument("--int-weight", type=float, default=1.0,
                        help="weight of the integer-only rows within the violation (default 1; their gradient "
                        "is about big-M times smaller than the other terms' for the robot)")
    parser.add_argument("--w-obj", type=float, default=w_obj, help=f"objective weight (default {w_obj:g})")
    parser.add_argument("--w-con", type=float, default=w_con, help=f"violation weight (default {w_con:g})")
    parser.add_argument("--w-sup", type=float, default=w_sup, help=f"supervised weight (default {w_sup:g})")
    parser.add_argument("--labels", choices=("canonical", "raw"), default="canonical",
                        help="supervised targets: the certified integers as stored (raw) or with every big-M "
                        "indicator set by whether its row holds at the label (canonical, default; "
                        "baselines/miqp_common/labels.py; no change for the tank)")
    parser.add_argument("--select", choices=("best", "last"), default="best",
                        help="keep the epoch with the best valid score (default) or the last one")
    parser.add_argument("--train-limit", type=int, default=0, help="use only the first N train instances (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"weights file (default baselines/miqp_{method}/weights/<data set name>.pt)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def train(method: str, args: argparse.Namespace, weights_dir: Path) -> Path:
    """Train one method on ``args.dataset``; write ``<out>.pt`` (weights and meta) and ``<out>.json``."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    ds = InstanceSet.open(args.dataset)
    s = ds.structure
    family = str(ds.meta.get("family"))
    if family not in ("mimpc-robot", "mimpc-tank"):
        raise UsageError(f"{args.dataset} holds family {family!r}; the MIQP baselines train on mimpc-robot or "
                         "mimpc-tank")
    train_split, valid = ds.split("train"), ds.split("valid")
    theta_all = np.asarray(train_split.params["theta"], float)
    certified = _status(train_split) == CERTIFIED
    if args.train_limit:
        theta_all, certified = theta_all[: args.train_limit], certified[: args.train_limit]
    x_label = np.asarray(train_split.labels["x"], float)[: theta_all.shape[0]]
    if args.labels == "canonical":
        x_label = canonical_labels(s, theta_all, x_label)
    w_obj, w_con, w_sup = args.w_obj, args.w_con, args.w_sup
    needs_layer = w_obj > 0 or w_con > 0
    # supervised-only training sees the certified rows only; the others see every train draw
    rows = np.flatnonzero(certified) if not needs_layer else np.arange(theta_all.shape[0])
    if rows.size == 0:
        raise UsageError(f"{args.dataset}: no usable train instances")
    theta_tr = torch.tensor(theta_all[rows])
    label_tr = torch.tensor(np.nan_to_num(x_label[rows][:, s.integer]))
    has_label = torch.tensor(certified[rows])
    hidden = [int(h) for h in args.hidden.split(",")]
    model = MIQPL2O(s, theta_all.mean(0), theta_all.std(0), hidden, rho=args.rho, slack=args.slack)
    opt = torch.optim.Adam(model.policy.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    theta_va = np.asarray(valid.params["theta"], float)
    f_va = np.where(_status(valid) == CERTIFIED, np.asarray(valid.labels["objective"], float), np.nan)
    name = str(ds.meta.get("name") or family)
    out = args.out or weights_dir / f"{name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    history: list[dict] = []
    best = (float("inf"), None, 0)
    n = rows.size
    ckpt = checkpoint_path(out)
    key = run_key({"method": method, "dataset_sha256": file_sha256(args.dataset),
                   **{k: v for k, v in vars(args).items() if k not in ("epochs", "quiet", "out", "dataset")}})
    done, elapsed = 0, 0.0
    state = load_checkpoint(ckpt, key)
    if state is not None:
        model.policy.load_state_dict(state["policy"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if needs_layer:
            model.layer.oracle.memory = unpack_warm_starts(state["warm_starts"])
        history = json.loads(state["history"])
        best = (float(state["best_score"]), state["best_policy"], int(state["best_epoch"]))
        done, elapsed = int(state["epoch"]), float(state["seconds"])
        if done > args.epochs:
            raise UsageError(f"{ckpt} holds {done} finished epochs, more than --epochs {args.epochs}; rerun with "
                             f"--epochs {done} or more to finish it, or delete it to start afresh")
        log.info("resuming %s after epoch %d (%s)", out.name, done, ckpt)
    start = time.perf_counter() - elapsed
    for epoch in range(done + 1, args.epochs + 1):
        model.train()
        order = rng.permutation(n)
        sums = {"loss": 0.0, "objective": 0.0, "violation": 0.0, "supervised": 0.0}
        steps = range(0, n, args.batch_size)
        bar = tqdm(steps, desc=f"{method} epoch {epoch}/{args.epochs}", disable=args.quiet, file=sys.stderr,
                   leave=False)
        for lo in bar:
            idx = order[lo: lo + args.batch_size]
            th = theta_tr[idx]
            loss = th.new_zeros(())
            if needs_layer:
                sol, _, logits = _forward(model, th, idx)
                f = model.terms.objective(sol.x, th)
                g = model.terms.violation(sol.x, th, args.int_weight)
                loss = loss + w_obj * f.mean() + w_con * args.penalty * g.mean()
                sums["objective"] += float(f.detach().mean()) * len(idx)
                sums["violation"] += float(g.detach().mean()) * len(idx)
            else:
                _, logits = model.policy(th)
            if w_sup > 0:
                lab = has_label[idx]
                if bool(lab.any()):
                    sup = model.policy.supervised_loss(logits[lab], label_tr[idx][lab]).mean()
                    loss = loss + w_sup * sup
                    sums["supervised"] += float(sup.detach()) * len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums["loss"] += float(loss.detach()) * len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        metrics = evaluate(model, theta_va, f_va)
        record = {"epoch": epoch, **{f"train_{k}": v / n for k, v in sums.items()},
                  **{f"valid_{k}": v for k, v in metrics.items()}, "seconds": time.perf_counter() - start}
        history.append(record)
        log.info("epoch %d: loss %.4g | valid: int viol %.3f, cont viol %.3f, gap %.3e (%d feasible), %.2f ms/inst "
                 "(%.0f s)", epoch, record["train_loss"], metrics["integer_violation_rate"],
                 metrics["continuous_violation_rate"], metrics.get("mean_gap", float("nan")),
                 metrics.get("gap_count", 0), metrics["ms_per_instance"], record["seconds"])
        sc = score(metrics)
        if args.select == "last" or sc < best[0]:
            best = (sc, {k: v.clone() for k, v in model.policy.state_dict().items()}, epoch)
        save_checkpoint(ckpt, {
            "key": key, "epoch": epoch, "seconds": time.perf_counter() - start,
            "policy": model.policy.state_dict(), "optimizer": opt.state_dict(),
            "numpy_rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(),
            "warm_starts": pack_warm_starts(model.layer.oracle.memory if needs_layer else {}),
            "history": json.dumps(history),
            "best_score": best[0], "best_policy": best[1], "best_epoch": best[2]})
    if best[1] is None:
        raise UsageError(f"--epochs must be at least 1, received {args.epochs}")
    model.policy.load_state_dict(best[1])
    trials = []
    for k, moves in REPAIR_GRID:
        m = evaluate(model, theta_va, f_va, repair=k, moves=moves)
        trials.append({"repair": k, "moves": moves, **m})
        log.info("repair %d, moves %s: valid violation %.3f, gap %.3e, %.2f ms/inst", k, moves, m["violation_rate"],
                 m.get("mean_gap", float("nan")), m["ms_per_instance"])
    chosen = min(trials, key=lambda r: (round(score(r), 9), r["moves"], r["repair"]))
    repair, moves = chosen["repair"], chosen["moves"]
    meta = {"method": method, "structure_hash": s.digest(), "family": family, "dataset": name,
            "dataset_sha256": file_sha256(args.dataset), "hidden": hidden, "rho": args.rho, "slack": args.slack,
            "penalty": args.penalty, "int_weight": args.int_weight, "labels": args.labels, "w_obj": w_obj,
            "w_con": w_con, "w_sup": w_sup, "lr": args.lr, "weight_decay": args.weight_decay,
            "batch_size": args.batch_size, "epochs": args.epochs, "select": args.select,
            "selected_epoch": best[2], "repair": int(repair), "moves": bool(moves), "train_instances": int(n),
            "train_limit": int(args.train_limit), "seed": args.seed,
            "train_seconds": time.perf_counter() - start, "torch": str(torch.__version__)}
    torch.save({"state_dict": best[1], "meta": meta}, out)
    kept = history[best[2] - 1]
    summary = {k[len("valid_"):]: v for k, v in kept.items() if k.startswith("valid_")}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "valid": summary, "repair_trials": trials,
                                                    "history": history}, indent=1) + "\n")
    ckpt.unlink(missing_ok=True)
    log.info("wrote %s (epoch %d kept, %.0f s)", out, best[2], meta["train_seconds"])
    return out


def _forward(model: MIQPL2O, th: torch.Tensor, keys: np.ndarray):
    """The differentiable pass with OSQP warm starts keyed by train index."""
    x_int, logits = model.policy(th)
    return model.layer(th, x_int, keys=keys), x_int, logits


def main(method: str, weights_dir: Path, argv: list[str] | None = None) -> int:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    args = build_parser(method).parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    train(method, args, weights_dir)
    return 0
