"""Time the L2O correction loop with each accurate QP layer, and check which layers can be trained through.

The loop is the test-time part of Kotary et al.'s Algorithm 1: ``steps`` times, solve the follower for the batch,
differentiate ``||ReLU(A y - b - E z(y))||^2`` wrt ``y`` and step. Layers (built by
``benchmarks/compare_qp_layers.py``'s candidates):

* ``ours-cold``: :class:`bilevelbench.torch.qp_layer.BatchedQP` without warm start;
* ``ours-warm``: the same, warm-started from the previous step's active sets (the default of ``FollowerLayer``);
* ``moreau``: cvxpylayers with ``solver="MOREAU"``.

Training through the correction steps (``create_graph=True``) needs the layer's backward pass to be
differentiable itself; the report says, per layer, whether a second backward pass works.

Example::

    python benchmarks/correction_loop_layers.py --out benchmarks/results/correction_loop.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_qp_layers as candidates

from bilevelbench.families.bqp.problem import parse_size, sample_structure
from bilevelbench.torch.qp_layer import BatchedQP


def _layers(s, args):
    H, F = torch.tensor(s.H), torch.tensor(s.F)
    out = {"ours-cold": BatchedQP(H, F, warm_start=False), "ours-warm": BatchedQP(H, F, warm_start=True)}
    try:
        out["moreau"] = candidates.CANDIDATES["moreau"][1](s, args)
    except candidates.Unavailable as exc:
        print(f"moreau unavailable: {exc}", file=sys.stderr)
    return out


def correction_loop(layer, s, y, steps: int, gamma: float, create_graph: bool = False) -> torch.Tensor:
    A, b, E = (torch.tensor(getattr(s, k)) for k in ("A", "b", "E"))
    e, h, G = (torch.tensor(getattr(s, k)) for k in ("e", "h", "G"))
    for _ in range(steps):
        if not y.requires_grad:
            y = y.detach().requires_grad_(True)
        z = layer(e.expand(y.shape[0], -1), h + y @ G.T)
        v = torch.relu(y @ A.T - b - z @ E.T).pow(2).sum()
        (grad,) = torch.autograd.grad(v, y, create_graph=create_graph)
        y = y - gamma * grad
        if not create_graph:
            y = y.detach()
    return y


def twice_differentiable(layer, s) -> str:
    y0 = torch.randn(4, s.m, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    try:
        correction_loop(layer, s, y0, 2, 1e-2, create_graph=True).pow(2).sum().backward()
    except Exception as exc:  # noqa: BLE001 - the point is to report which layers fail
        return f"no ({type(exc).__name__}: {str(exc)[:80]})"
    return "yes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="3x2,6x4,9x6,12x9")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--gamma", type=float, default=1e-2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for size in args.sizes.split(","):
        m, n = parse_size(size)
        rng = np.random.default_rng([args.seed, m, n])
        s = sample_structure(rng, m, n)
        layers = _layers(s, args)
        for batch in map(int, args.batches.split(",")):
            y0 = torch.tensor(rng.standard_normal((batch, m)))
            times = {name: [] for name in layers}
            answers = {}
            for name, layer in layers.items():
                answers[name] = correction_loop(layer, s, y0, args.steps, args.gamma)     # warm-up
            for _ in range(args.repeats):          # layers in turn in each round: load changes hit all alike
                for name, layer in layers.items():
                    t0 = time.perf_counter()
                    correction_loop(layer, s, y0, args.steps, args.gamma)
                    times[name].append(time.perf_counter() - t0)
            for name in layers:
                diff = float((answers[name] - answers["ours-cold"]).abs().max())
                rows.append((size, batch, name, 1000 * statistics.median(times[name]) / batch, diff))
        for name, layer in layers.items():
            rows.append((size, "-", name, None, twice_differentiable(layer, s)))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = ["# Correction loop: QP layers", "",
             (f"`python benchmarks/correction_loop_layers.py` ({args.steps} steps, step {args.gamma:g}, median of "
             f"{args.repeats}, 1 thread) on {platform.processor() or platform.machine()}, torch {torch.__version__};"
             f" load average at the end {load}."), "",
             "| size | batch | layer | ms per instance | max \\|y - y(ours-cold)\\| |", "|---|---|---|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:.1e} |" for r in rows if r[3] is not None]
    lines += ["", "| size | layer | second backward (training through the correction steps) |", "|---|---|---|"]
    lines += [f"| {r[0]} | {r[2]} | {r[4]} |" for r in rows if r[3] is None]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
