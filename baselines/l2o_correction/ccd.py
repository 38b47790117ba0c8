"""L2O with coupling correction on the control co-design families (Kotary et al., Algorithm 1; the paper's Table 2).

A network maps an instance's parameters to a design; ``steps`` correction steps then move the design down the
gradient of the squared coupling violation (``||x_T - p||^2``; ``||slacks||^2``), each followed by the projection
onto the design set (the box; ``Y >= 0``), exactly as the authors' ``c_correction`` / ``B_correction``. The
gradients come from the implicit-differentiation layers of :mod:`bilevelbench.families.ccd.layers`.

Training (self-supervised, parameters only): ``loss = cost(y) + lambda violation(y)^2`` at the corrected design;
as in the authors' code the correction increments are treated as constants (no second-order terms), so the
gradient reaches the network through the projection. Settings from the issue / paper: two-tank 8-layer network,
5 correction steps in training and 10 at test, lr 1e-3, gamma 1e-2, lambda 10; HVAC 6-layer network, gamma 1e-4,
lambda 100.

Follower inside the method. For speed, the two-tank model solves its follower from the authors' single start
(``u = 0``) rather than the evaluator's five; the evaluator re-scores every answer with its own defined
response, so this only affects the method's quality. Rows whose follower did not converge are counted
(``nonconverged``) and dropped from the training loss, never given a silent zero gradient.

Train::

    python -m baselines.l2o_correction.ccd --dataset data/ccd-twotank.h5 --epochs 3 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.evaluate.provenance import file_sha256
from bilevelbench.families.ccd import hvac as ccd_hvac
from bilevelbench.families.ccd import twotank as ccd_twotank

log = logging.getLogger("l2o_correction.ccd")
HERE = Path(__file__).resolve().parent

SETTINGS = {
    "ccd-twotank": {"hidden": [64, 128, 128, 128, 128, 128, 64], "train_steps": 5, "test_steps": 10, "lr": 1e-3,
                    "gamma": 1e-2, "lam": 10.0, "batch": 128},
    "ccd-hvac": {"hidden": [256, 256, 256, 256, 256], "train_steps": 5, "test_steps": 10, "lr": 1e-3,
                 "gamma": 1e-4, "lam": 100.0, "batch": 128},
}


def features(family: str, params: dict[str, np.ndarray]) -> torch.Tensor:
    """The network's input: the target (two-tank); initial state, lower band and disturbances (HVAC, scaled)."""
    if family == ccd_twotank.FAMILY:
        return torch.as_tensor(np.asarray(params["p"], float))
    x0 = (np.asarray(params["x0"], float) - 20.0) / 2.0
    band = (np.asarray(params["ymin"], float).reshape(len(x0), -1) - 20.0) / 2.0
    d = np.asarray(params["d"], float)
    d = (d / np.array([20.0, 500.0, 1000.0])).reshape(len(x0), -1)
    return torch.as_tensor(np.concatenate([x0, band, d], 1))


class CCDNet(nn.Module):
    """MLP (ReLU, BatchNorm as the authors' ``ReLUnet``) and the map onto the design set."""

    def __init__(self, family: str, n_in: int, n_out: int, hidden: list[int], lo=None, hi=None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_out))
        self.body = nn.Sequential(*layers).double()
        self.family = family
        self.register_buffer("lo", torch.as_tensor(np.zeros(n_out) if lo is None else lo, dtype=torch.float64))
        self.register_buffer("hi", torch.as_tensor(np.ones(n_out) if hi is None else hi, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.family == ccd_twotank.FAMILY:
            return self.lo + (self.hi - self.lo) * torch.sigmoid(out)
        return torch.relu(out)


class CCDProblem:
    """Coupling violation, cost and projection of one family, with the method's (fast) follower."""

    def __init__(self, family: str, structure) -> None:
        self.family, self.s = family, structure
        if family == ccd_twotank.FAMILY:
            self.fast = replace(structure, starts=np.asarray(structure.starts)[:1])
        else:
            from bilevelbench.families.ccd.layers import HVACLayer

            self.layer = HVACLayer(structure)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        if self.family == ccd_twotank.FAMILY:
            lo = torch.as_tensor(self.s.design_lo, dtype=y.dtype)
            hi = torch.as_tensor(self.s.design_hi, dtype=y.dtype)
            return torch.minimum(torch.maximum(y, lo), hi)
        return torch.relu(y)

    def violation_sq(self, y: torch.Tensor, params) -> tuple[torch.Tensor, torch.Tensor]:
        """``(||coupling||^2 per row, converged per row)``, differentiable in ``y``."""
        from bilevelbench.families.ccd.layers import twotank_final_state

        if self.family == ccd_twotank.FAMILY:
            p = params[0]
            x_final, conv = twotank_final_state(self.fast, y, p)
            return ((x_final - p) ** 2).sum(1), conv
        slack, conv = self.layer.slacks(y, *params)
        return (slack ** 2).sum(1), conv

    def tensors(self, params: dict[str, np.ndarray]) -> tuple:
        if self.family == ccd_twotank.FAMILY:
            return (torch.as_tensor(np.asarray(params["p"], float)),)
        return ccd_hvac.as_tensors(params)


def correct(problem: CCDProblem, y: torch.Tensor, params: tuple, steps: int, gamma: float) -> torch.Tensor:
    """``steps`` projected gradient steps on the squared coupling violation; increments are constants."""
    y = problem.project(y)
    for _ in range(steps):
        probe = y.detach().requires_grad_(True)
        with torch.enable_grad():
            v, _ = problem.violation_sq(probe, params)
            (grad,) = torch.autograd.grad(v.sum(), probe)
        y = problem.project(y - gamma * grad)
    return y


def _rows(params: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in params.items()}


def train(dataset: Path, epochs: int, seed: int, out: Path, limit: int | None = None, lam: float | None = None
          ) -> dict:
    """Train on the ``train`` split's parameters; report the ``valid`` split's penalised objective per epoch.

    ``lam`` replaces the paper's penalty weight (e.g. the family's scoring kappa)."""
    from bilevelbench.families.ccd.generate import evaluate

    torch.manual_seed(seed)
    ds = InstanceSet.open(dataset)
    family, s = ds.family, ds.structure
    cfg = dict(SETTINGS[family])
    if lam is not None:
        cfg["lam"] = float(lam)
    train_params = ds.split("train").params
    if limit:
        train_params = _rows(train_params, np.arange(min(limit, len(ds.split("train")))))
    valid = ds.split("valid").params
    valid = _rows(valid, np.arange(min(200, next(iter(valid.values())).shape[0])))
    problem = CCDProblem(family, s)
    n_in = features(family, _rows(train_params, np.arange(2))).shape[1]
    lo = np.asarray(s.design_lo) if family == ccd_twotank.FAMILY else None
    hi = np.asarray(s.design_hi) if family == ccd_twotank.FAMILY else None
    net = CCDNet(family, n_in, s.design_dim, cfg["hidden"], lo, hi)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    n = next(iter(train_params.values())).shape[0]
    rng = np.random.default_rng(seed)
    history = []
    nonconverged_total = 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(n)
        losses = []
        for start in range(0, n - cfg["batch"] + 1, cfg["batch"]):
            idx = order[start:start + cfg["batch"]]
            rows = _rows(train_params, idx)
            tens = problem.tensors(rows)
            y0 = net(features(family, rows))
            y_corr = correct(problem, y0.detach(), tens, cfg["train_steps"], cfg["gamma"])
            y = problem.project(y0 + (y_corr - y0).detach())        # the authors' constant correction increment
            v, conv = problem.violation_sq(y, tens)
            nonconverged_total += int((~conv).sum())
            keep = conv.to(y.dtype)
            loss = ((y.sum(1) + cfg["lam"] * v) * keep).sum() / keep.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
                  "nonconverged_rows": nonconverged_total}
        if next(iter(valid.values())).shape[0]:
            record.update(validate(net, problem, valid, cfg["test_steps"], cfg["gamma"], evaluate))
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
    meta = {"family": family, "structure_hash": s.digest(), "dataset_sha256": file_sha256(dataset),
            "dataset": Path(dataset).name, "seed": seed, "epochs": epochs, "limit": limit, **cfg, "n_in": n_in,
            "history": history, "command": " ".join(sys.argv)}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"meta": meta, "state_dict": net.state_dict()}, out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def validate(net: CCDNet, problem: CCDProblem, params: dict[str, np.ndarray], steps: int, gamma: float,
             evaluate) -> dict:
    """The evaluator's penalised objective (its own follower) of the corrected designs on ``params``."""
    net.eval()
    with torch.no_grad():
        y0 = net(features(problem.family, params))
    y = correct(problem, y0, problem.tensors(params), steps, gamma).detach().numpy()
    scored = evaluate(problem.family, problem.s, y, params)
    return {"valid_objective": float(np.mean(scored["objective"])), "valid_cost": float(np.mean(scored["cost"])),
            "valid_violation": float(np.mean(scored["violation"]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the L2O-with-correction model on a ccd data set.")
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N train instances only")
    parser.add_argument("--out", type=Path, default=None, help="weight file (default weights/NAME.pt)")
    parser.add_argument("--lam", type=float, default=None,
                        help="training penalty weight (default: the paper's, 10 two-tank / 100 HVAC)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    name = InstanceSet.open(args.dataset).meta.get("name") or args.dataset.stem
    out = args.out or HERE / "weights" / f"{name}.pt"
    train(args.dataset, args.epochs, args.seed, out, args.limit, args.lam)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
