"""Train the L2O-with-correction model with each backward pass through the follower and compare.

The three ways of differentiating the follower's response ``z(y)`` (``bilevelbench.families.bqp.coupling``):

* ``implicit``: the exact interior-point answer, backward by a direct solve of the active-set KKT system;
* ``bigrad``: the same forward, backward by BiGrad's conjugate-gradient adjoint (Alesiani, Theorem 2);
* ``unrolled``: 200 dual FISTA iterations, differentiated by unrolling them (autograd through every step).

Each is trained by ``python -m baselines.l2o_correction.train`` with identical settings and seed (only
``--follower-gradient`` changes), on one thread; the table reports the wall time of training, the time per
training step, and the valid split's gap and violation after the last epoch (training correction step and the
step tuned on valid). Example::

    python benchmarks/compare_l2o_backward.py --dataset data/bqp-6x4.h5 --epochs 5 \\
        --out benchmarks/results/l2o_backward.md
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # the repository root, for baselines/
from baselines.l2o_correction import train
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.families.bqp.coupling import FOLLOWER_GRADIENTS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradients", default=",".join(FOLLOWER_GRADIENTS),
                        help="comma-separated subset of " + ", ".join(FOLLOWER_GRADIENTS))
    parser.add_argument("--extra", default="", help="further arguments for the training command, quoted")
    parser.add_argument("--out", type=Path, default=None, help="markdown table (default: print)")
    args = parser.parse_args(argv)
    n_train = len(InstanceSet.open(args.dataset).split("train"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gradient in args.gradients.split(","):
            out = Path(tmp) / f"{gradient}.pt"
            train.main(["--dataset", str(args.dataset), "--epochs", str(args.epochs), "--seed", str(args.seed),
                        "--follower-gradient", gradient, "--out", str(out), "-q", *args.extra.split()])
            report = json.loads(out.with_suffix(".json").read_text())
            meta, last = report["meta"], report["history"][-1]
            tuned = next(t for t in report["test_gamma_trials"] if t["gamma"] == meta["test_gamma"])
            steps = args.epochs * (meta.get("fresh_draws") or n_train // meta["batch_size"])
            rows.append((gradient, meta["train_seconds"], 1000 * meta["train_seconds"] / steps, last["valid_gap"],
                         last["valid_paper_gap"], last["valid_violation"], meta["test_gamma"], tuned["valid_gap"],
                         tuned["valid_violation"]))
    lines = [(f"# L2O training: backward pass through the follower ({args.dataset.name}, {args.epochs} epochs, "
             f"seed {args.seed})"), "",
             (f"`python benchmarks/compare_l2o_backward.py --dataset {args.dataset} --epochs {args.epochs}"
             + (f' --extra "{args.extra}"' if args.extra else "") + "` on "
             f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread."), "",
             ("| backward | train s | ms/step | valid gap | paper gap | violation | tuned step | gap (tuned) | "
             "violation (tuned) |"), "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]:.0f} | {r[2]:.1f} | {r[3]:.3e} | {r[4]:.3e} | {r[5]:.2e} | {r[6]:g} | "
                     f"{r[7]:.3e} | {r[8]:.2e} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
