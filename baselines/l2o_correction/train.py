"""Train the L2O-with-coupling-correction model (Kotary et al., Algorithm 1) on one data set.

Reproduces a committed weight file from a data set and a seed::

    python -m baselines.l2o_correction.train --dataset data/bqp-9x6.h5 --seed 0

Self-supervised (no labels needed for training): the loss is the upper objective at ``(y, z(y))`` plus
``penalty * ||ReLU(A y - b - E z(y))||^2``, where ``y`` is the network's output after ``--train-steps``
correction steps and ``z(y)`` comes from the batched differentiable QP layer. The validation split's
certified labels are used only to report the gap and violation per epoch (the training curve).
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

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate import metrics
from bilevelbench.evaluate.provenance import file_sha256
from bilevelbench.families.bqp.coupling import FOLLOWER_GRADIENTS, L2OCorrection, correct
from bilevelbench.families.bqp.problem import sample_params

log = logging.getLogger("l2o_correction.train")
HERE = Path(__file__).resolve().parent
#: Hidden widths as multiples of the input size k = m + n. The authors use [50k, 100k, 200k, 100k, 50k]
#: (about 11 million weights at 9x6, 45 MB per file); bilevelbench commits smaller files.
DEFAULT_WIDTH_FACTORS = (8, 16, 32, 16, 8)


#: Test-time correction steps tried on the valid split (the training step is always tried too).
TEST_GAMMA_GRID = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)


def evaluate(model: L2OCorrection, c: torch.Tensor, d: torch.Tensor, ref: torch.Tensor, steps: int,
             paper_offset: float, gamma: float | None = None) -> tuple[float, float, float]:
    """Mean relative gap (docs/metrics.md), the paper's +offset gap, and mean coupling violation.

    ``gamma`` is the correction step (default: the model's training step).
    """
    model.eval()
    with torch.no_grad():
        y0 = model.mlp(torch.cat([c, d], 1))
    with torch.enable_grad():
        y = correct(model.problem, y0, steps, model.gamma if gamma is None else gamma, create_graph=False)
    with torch.no_grad():
        z = model.problem.follower(y)
        obj = model.problem.objective(c, d, y, z).numpy()
        viol = metrics.relu_l2(model.problem.coupling(y, z).numpy())
    ref = ref.numpy()
    gap = metrics.relative_gap(obj, ref)
    paper = metrics.offset_relative_gap(obj, ref, paper_offset)
    return float(gap.mean()), float(paper.mean()), float(viol.mean())


def tune_test_gamma(model: L2OCorrection, c: torch.Tensor, d: torch.Tensor, ref: torch.Tensor, steps: int,
                    paper_offset: float, tolerance: float) -> tuple[float, list[dict]]:
    """The test-time correction step, chosen on the valid split.

    Among the training step and :data:`TEST_GAMMA_GRID`, the step with the lowest mean gap whose mean
    coupling violation is at most ``tolerance``; when none reaches it, the step with the lowest violation.
    Returns the step and every trial.
    """
    trials = []
    for gamma in sorted({model.gamma, *TEST_GAMMA_GRID}):
        gap, paper_gap, viol = evaluate(model, c, d, ref, steps, paper_offset, gamma)
        trials.append({"gamma": gamma, "valid_gap": gap, "valid_paper_gap": paper_gap, "valid_violation": viol})
        log.info("test-time step %g: valid gap %.3e, violation %.3e", gamma, gap, viol)
    ok = [t for t in trials if t["valid_violation"] <= tolerance]
    best = min(ok, key=lambda t: t["valid_gap"]) if ok else min(trials, key=lambda t: t["valid_violation"])
    return float(best["gamma"]), trials


def plot_curve(history: list[dict], path: Path, title: str) -> None:
    """Validation gap and violation per epoch (log scale), like the paper's Figure 2."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3))
    ax1, ax2 = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax1.semilogy(epochs, [h["valid_gap"] for h in history], marker="o", label="gap")
    ax1.semilogy(epochs, [h["valid_paper_gap"] for h in history], marker=".", ls="--", label="paper convention")
    ax1.legend()
    ax1.set(xlabel="epoch", ylabel="mean relative gap (valid)", title="optimality gap")
    ax2.semilogy(epochs, [max(h["valid_violation"], 1e-12) for h in history], marker="o", color="C3")
    ax2.set(xlabel="epoch", ylabel="mean ||ReLU(U)||_2 (valid)", title="coupling violation")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.l2o_correction.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="instance set (train split: parameters; "
                        "valid split: certified labels for the training curve)")
    parser.add_argument("--seed", type=int, default=0, help="torch and shuffling seed (default 0)")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the train split (default 30)")
    parser.add_argument("--batch-size", type=int, default=100, help="default 100, as the authors")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (paper's best: 1e-3)")
    parser.add_argument("--gamma", type=float, default=1e-4, help="correction step (paper's best: 1e-4)")
    parser.add_argument("--penalty", type=float, default=100.0, help="lambda of the soft penalty (default 100)")
    parser.add_argument("--train-steps", type=int, default=10, help="correction steps in training (10)")
    parser.add_argument("--test-steps", type=int, default=20, help="correction steps at test time (20)")
    parser.add_argument("--fresh-draws", type=int, default=0, metavar="STEPS",
                        help="train on STEPS fresh parameter batches per epoch drawn from the family's sampler "
                        "(the authors: 400) instead of passes over the train split (default 0: the train split)")
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                        help="learning-rate schedule over all steps (default cosine decay to 0; the authors: "
                        "constant)")
    parser.add_argument("--violation-tolerance", type=float, default=1e-6,
                        help="mean valid violation the test-time correction step must reach (default 1e-6)")
    parser.add_argument("--follower-gradient", choices=FOLLOWER_GRADIENTS, default="implicit",
                        help="how z(y) is differentiated: active-set KKT solved directly (implicit, default), "
                        "BiGrad's CG adjoint (bigrad) or unrolled dual FISTA iterations (unrolled)")
    parser.add_argument("--width-factors", type=str, default=",".join(map(str, DEFAULT_WIDTH_FACTORS)),
                        help="hidden widths as multiples of k = m + n (default 8,16,32,16,8)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="weights file (default baselines/l2o_correction/weights/<dataset name>.pt)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    ds = InstanceSet.open(args.dataset)
    name = str(ds.meta.get("name") or args.dataset.stem)
    s = ds.structure
    train = ds.split("train").params
    valid = ds.split("valid")
    c_tr, d_tr = torch.tensor(train["c"]), torch.tensor(train["d"])
    c_va, d_va = torch.tensor(valid.params["c"]), torch.tensor(valid.params["d"])
    ref = torch.tensor(valid.labels["objective"])
    offset = float((ds.meta.get("paper_convention") or {}).get("gap_offset", 0.0))
    k = s.m + s.n
    hidden = [int(f) * k for f in args.width_factors.split(",")]
    model = L2OCorrection(s, hidden, args.gamma, args.follower_gradient)
    opt = torch.optim.Adam(model.mlp.parameters(), lr=args.lr)
    n = c_tr.shape[0]
    steps_per_epoch = args.fresh_draws or n // args.batch_size
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
             if args.schedule == "cosine" else None)
    history: list[dict] = []
    out = args.out or HERE / "weights" / f"{name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    from tqdm import tqdm

    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.from_numpy(rng.permutation(n))
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", disable=args.quiet,
                   file=sys.stderr, leave=False)
        for step in bar:
            if args.fresh_draws:
                draw = sample_params(rng, s, args.batch_size)
                c_b, d_b = torch.from_numpy(draw["c"]), torch.from_numpy(draw["d"])
            else:
                idx = order[step * args.batch_size:(step + 1) * args.batch_size]
                c_b, d_b = c_tr[idx], d_tr[idx]
            y = model(c_b, d_b, args.train_steps)
            loss, _, _ = model.loss(c_b, d_b, y, args.penalty)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
        gap, paper_gap, viol = evaluate(model, c_va, d_va, ref, args.test_steps, offset)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_gap": gap,
                        "valid_paper_gap": paper_gap,
                        "valid_violation": viol, "seconds": time.perf_counter() - start})
        log.info("epoch %d: loss %.5g, valid gap %.3e (paper +%g convention %.3e), violation %.3e (%.0f s)",
                 epoch, history[-1]["train_loss"], gap, offset, paper_gap, viol, history[-1]["seconds"])
    test_gamma, trials = tune_test_gamma(model, c_va, d_va, ref, args.test_steps, offset,
                                         args.violation_tolerance)
    meta = {"structure_hash": s.digest(), "dataset": name, "dataset_sha256": file_sha256(args.dataset),
            "hidden": hidden, "gamma": args.gamma, "penalty": args.penalty, "lr": args.lr, "epochs": args.epochs,
            "batch_size": args.batch_size, "train_steps": args.train_steps, "test_steps": args.test_steps,
            "test_gamma": test_gamma, "schedule": args.schedule, "fresh_draws": args.fresh_draws,
            "follower_gradient": args.follower_gradient,
            "seed": args.seed, "train_seconds": time.perf_counter() - start, "torch": str(torch.__version__)}
    torch.save({"state_dict": model.mlp.state_dict(), "meta": meta}, out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "history": history, "test_gamma_trials": trials},
                                                   indent=1) + "\n")
    plot_curve(history, out.with_name(out.stem + "-curve.png"), f"L2O with coupling correction, {name}")
    log.info("wrote %s (%.0f s)", out, meta["train_seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
