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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
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


#: The two-tank method's follower: stationarity tolerance, and Newton steps allowed from a warm start.
METHOD_TOL = 1e-8
WARM_ITERATIONS = 15
#: Largest implicit Newton step (max-abs, controls in [0, 1]) whose derivative is used where not converged.
MAX_IMPLICIT_STEP = 0.5


def network_for(family: str, structure, n_in: int, hidden: list[int]) -> CCDNet:
    """The method's network for a family: the two-tank's sigmoid maps onto its design box, HVAC's ReLU onto
    ``Y >= 0``."""
    twotank = family == ccd_twotank.FAMILY
    return CCDNet(family, n_in, structure.design_dim, list(hidden),
                  np.asarray(structure.design_lo) if twotank else None,
                  np.asarray(structure.design_hi) if twotank else None)


def load_network(blob: dict, family: str, structure) -> CCDNet:
    """The trained network of a weight file's contents (``torch.load(..., weights_only=True)``), in eval mode."""
    meta = blob["meta"]
    net = network_for(family, structure, int(meta["n_in"]), meta["hidden"])
    net.load_state_dict(blob["state_dict"])
    net.eval()
    return net


class CCDProblem:
    """Coupling violation, cost and projection of one family, with the method's (fast) follower.

    The method's follower is warm-started: :meth:`response` takes the controls of the previous solve for the
    same rows (``u0``; zeros, the authors' start, when there are none) and returns the new ones. The two-tank
    layer uses the closed-form Hessian (:func:`bilevelbench.families.ccd.twotank.exact_hessian`).
    """

    def __init__(self, family: str, structure, cold_starts: str = "authors") -> None:
        if cold_starts not in ("authors", "family"):
            raise ValueError(f"cold_starts must be 'authors' or 'family', not {cold_starts!r}")
        self.family, self.s, self.cold_starts = family, structure, cold_starts
        if family == ccd_twotank.FAMILY:
            self.n_controls = 2 * structure.steps
            # The method's follower: stationarity 1e-8 (the evaluator's is 1e-9), and at most WARM_ITERATIONS
            # projected Newton steps from a warm start; rows that chatter at an empty tank would otherwise keep
            # every batch at 50 iterations.
            self.cold = replace(structure, follower_tol=METHOD_TOL,
                                starts=np.asarray(structure.starts)[:1] if cold_starts == "authors"
                                else np.asarray(structure.starts))
            self.warm = replace(structure, follower_tol=METHOD_TOL, follower_max_iter=WARM_ITERATIONS)
        else:
            from bilevelbench.families.ccd.layers import HVACLayer

            self.layer = HVACLayer(structure)
            self.n_controls = structure.horizon * 2

    def project(self, y: torch.Tensor) -> torch.Tensor:
        if self.family == ccd_twotank.FAMILY:
            lo = torch.as_tensor(self.s.design_lo, dtype=y.dtype)
            hi = torch.as_tensor(self.s.design_hi, dtype=y.dtype)
            return torch.minimum(torch.maximum(y, lo), hi)
        return torch.relu(y)

    def cold_start(self, n: int) -> torch.Tensor:
        """Zero controls for ``n`` rows (the authors' single follower start)."""
        return torch.zeros(n, self.n_controls, dtype=torch.float64)

    def response(self, y: torch.Tensor, params, u0: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(||coupling||^2 per row (differentiable in y), converged per row, follower controls)``."""
        from bilevelbench.families.ccd.layers import twotank_response

        if self.family == ccd_twotank.FAMILY:
            p = params[0]
            if u0 is None and self.cold_starts == "family":
                res = twotank_response(self.cold, y, p, hessian="closed-form")
            else:
                s = self.cold if u0 is None else self.warm
                u0 = self.cold_start(y.shape[0]) if u0 is None else u0
                res = twotank_response(s, y, p, u0=u0, hessian="closed-form")
            # Where the follower missed its tolerance (about half the rows of a warm solve capped at
            # WARM_ITERATIONS; levels chattering at an empty tank) the Newton step u_out - u is not zero: there the
            # value is taken at the follower's controls and only the derivative from u_out (straight through).
            # Rows whose step is large (a nearly singular Hessian) keep the controls fixed instead.
            step = (res.u_out - res.u).detach().abs().amax(1, keepdim=True)
            through = torch.where(step <= MAX_IMPLICIT_STEP, res.u_out - res.u_out.detach(), torch.zeros_like(res.u))
            u_used = res.u + through
            x_final = ccd_twotank.rollout(self.s, u_used.view(-1, self.s.steps, 2), y)[:, -1]
            return ((x_final - p) ** 2).sum(1), res.converged, res.u
        res = self.layer.response(y, *params, u0=u0)
        return (res.slack ** 2).sum(1), res.converged, res.u

    def value(self, y: torch.Tensor, params, u0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(||coupling||^2 per row, follower controls)`` without the implicit layer (no gradient)."""
        with torch.no_grad():
            if self.family == ccd_twotank.FAMILY:
                p = params[0]
                if u0 is None:
                    res = ccd_twotank.solve_follower(self.cold, y.numpy(), p.numpy())
                    u = torch.as_tensor(res.u).reshape(y.shape[0], -1)
                else:
                    u, _, _, _ = ccd_twotank.solve_from(self.warm, y, p, u0)
                x_final = ccd_twotank.rollout(self.s, u.view(-1, self.s.steps, 2), y)[:, -1]
                return ((x_final - p) ** 2).sum(1), u
            res = ccd_hvac.solve_follower_torch(self.s, self.layer.cond, y, *params, u0=u0)
            return (res.slack ** 2).sum(1), res.u

    def tensors(self, params: dict[str, np.ndarray]) -> tuple:
        if self.family == ccd_twotank.FAMILY:
            return (torch.as_tensor(np.asarray(params["p"], float)),)
        return ccd_hvac.as_tensors(params)


def correction_path(problem: CCDProblem, y: torch.Tensor, params: tuple, steps: int, gamma: float,
                    u0: torch.Tensor | None = None, objective_weight: float | None = None
                    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """The designs after 0, 1, ..., ``steps`` projected gradient steps, with the follower's last controls.

    The paper's correction (``objective_weight`` None) descends the squared coupling violation alone; with a
    weight ``w`` it descends the penalised objective ``cost + w violation^2`` (the score, for ``w = kappa``).
    Increments are constants (no graph); each follower solve is warm-started from the previous one (from
    ``u0``; the method's cold start when None).
    """
    y = problem.project(y)
    u = u0
    yield 0, y, u
    for k in range(1, steps + 1):
        probe = y.detach().requires_grad_(True)
        with torch.enable_grad():
            v, _, u = problem.response(probe, params, u)
            target = v if objective_weight is None else probe.sum(1) + objective_weight * v
            (grad,) = torch.autograd.grad(target.sum(), probe)
        y = problem.project(y - gamma * grad)
        yield k, y, u


def correct(problem: CCDProblem, y: torch.Tensor, params: tuple, steps: int, gamma: float,
            u0: torch.Tensor | None = None, objective_weight: float | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``steps`` correction steps (:func:`correction_path`); the final design and the follower's controls."""
    out, u = y, u0
    for _, out, u in correction_path(problem, y, params, steps, gamma, u0, objective_weight):
        pass
    return out, u


def search_path(problem: CCDProblem, y: torch.Tensor, params: tuple, steps: int, step0: float, weight: float
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """The designs after 0, 1, ..., ``steps`` iterations of the best-known search's local phase, from ``y``, with
    the follower's controls (None before the first iteration: no follower is solved for zero steps).

    Per row: a normalised gradient step of the penalised objective ``cost + weight violation^2`` at three
    lengths ``t, t/4, t/16`` at once; the best trial is kept if it lowers the objective (then ``t`` doubles,
    divided by 4 per length rank), else the row stays and ``t`` drops 16-fold (``t`` starts at ``step0``).
    Values come from the method's warm-started follower. Monotone per row in the method's objective.
    """
    y = problem.project(y)
    yield 0, y, None
    if steps == 0:
        return
    v, u = problem.value(y, params)
    f = y.sum(1) + weight * v
    t = torch.full((y.shape[0],), float(step0), dtype=y.dtype)
    rep = [x.repeat_interleave(3, 0) for x in params]
    for k in range(1, steps + 1):
        probe = y.detach().requires_grad_(True)
        with torch.enable_grad():
            vg, _, _ = problem.response(probe, params, u)
            (grad,) = torch.autograd.grad((probe.sum(1) + weight * vg).sum(), probe)
        scale = t / grad.norm(dim=1).clamp(min=1e-12)
        lengths = scale.unsqueeze(1) / torch.tensor([1.0, 4.0, 16.0], dtype=y.dtype)          # (B, 3)
        trials = problem.project((y.unsqueeze(1) - lengths.unsqueeze(2) * grad.unsqueeze(1)).reshape(-1, y.shape[1]))
        vt, ut = problem.value(trials, rep, u.repeat_interleave(3, 0))
        ft = (trials.sum(1) + weight * vt).view(-1, 3)
        j = ft.argmin(1)
        rows = torch.arange(y.shape[0])
        better = ft[rows, j] < f
        pick = rows * 3 + j
        y = torch.where(better.unsqueeze(1), trials[pick], y)
        u = torch.where(better.unsqueeze(1), ut[pick], u)
        f = torch.where(better, ft[rows, j], f)
        t = torch.where(better, 2 * t / 4.0 ** j.to(y.dtype), t / 16)
        yield k, y, u


def _rows(params: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in params.items()}


#: Test-time correction counts tried on the valid split after training (the paper uses 10).
TEST_STEP_GRID = (0, 1, 2, 3, 5, 10)


@dataclass
class TrainOptions:
    """Everything that defines a training run besides the data set (defaults: the paper's, from SETTINGS)."""

    epochs: int = 3
    seed: int = 0
    limit: int | None = None
    lam: float | None = None
    train_steps: int | None = None
    lr: float | None = None
    batch: int | None = None
    #: Stop when the valid objective has not improved by ``min_delta`` (relative) for this many epochs; the
    #: learning rate is divided by 3 after half as many. None: run all epochs at a constant rate (the paper's).
    patience: int | None = None
    min_delta: float = 2e-3
    #: Valid rows scored per epoch (the evaluator's defined follower).
    n_valid: int = 200
    #: Choose the test-time correction count on valid from TEST_STEP_GRID (else the paper's 10).
    choose_test_steps: bool = False
    #: Keep rows whose follower missed its tolerance in the loss (their implicit gradient is approximate);
    #: dropping them, as the first version did, hides exactly the designs where the tank runs dry.
    keep_nonconverged: bool = False
    #: Two-tank: the method's cold follower solve starts from the authors' u = 0 only ("authors") or from every
    #: start of the family's defined response ("family", five times the cost, the response the evaluator scores).
    cold_starts: str = "authors"


def _checkpoint_path(out: Path) -> Path:
    return out.with_suffix(".ckpt")


def train(dataset: Path, epochs: int = 3, seed: int = 0, out: Path | None = None, limit: int | None = None,
          lam: float | None = None, options: TrainOptions | None = None) -> dict:
    """Train on the ``train`` split's parameters; report the ``valid`` split's penalised objective per epoch.

    ``lam`` replaces the paper's penalty weight (e.g. the family's scoring kappa). ``options`` (all other
    settings, see :class:`TrainOptions`) overrides ``epochs``, ``seed``, ``limit`` and ``lam`` when given. Each
    epoch writes a checkpoint next to ``out`` (``.ckpt``, kept); a run with the same arguments resumes from it,
    and one with a larger ``epochs`` continues the finished run.
    """
    from bilevelbench.families.ccd.generate import evaluate

    opts = options or TrainOptions(epochs=epochs, seed=seed, limit=limit, lam=lam)
    if out is None:
        raise ValueError("train needs an output path")
    torch.manual_seed(opts.seed)
    ds = InstanceSet.open(dataset)
    family, s = ds.family, ds.structure
    cfg = dict(SETTINGS[family])
    for key in ("lam", "train_steps", "lr", "batch"):
        if getattr(opts, key) is not None:
            cfg[key] = type(cfg[key])(getattr(opts, key))
    train_params = ds.split("train").params
    if opts.limit:
        train_params = _rows(train_params, np.arange(min(opts.limit, len(ds.split("train")))))
    valid = ds.split("valid").params
    valid = _rows(valid, np.arange(min(opts.n_valid, next(iter(valid.values())).shape[0])))
    problem = CCDProblem(family, s, opts.cold_starts)
    n_in = features(family, _rows(train_params, np.arange(2))).shape[1]
    net = network_for(family, s, n_in, cfg["hidden"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    n = next(iter(train_params.values())).shape[0]
    warm = problem.cold_start(n)            # each train row's last follower controls (warm starts across epochs)
    seen = torch.zeros(n, dtype=torch.bool)  # rows solved before (else: a cold solve)
    history: list[dict] = []
    best_state, best_value, since_best = None, float("inf"), 0
    nonconverged_total = 0
    done_epochs, elapsed = 0, 0.0
    ckpt = _checkpoint_path(out)
    # everything but the epoch budget: a rerun with more --epochs continues from the checkpoint
    fingerprint = json.dumps({"dataset": file_sha256(dataset), **cfg, **asdict(opts), "epochs": None},
                             sort_keys=True, default=str)
    if ckpt.is_file():
        state = torch.load(ckpt, weights_only=True)
        if state.get("fingerprint") == fingerprint:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            warm, seen = state["warm"], state["seen"]
            history = json.loads(state["history"])
            best_state, best_value = state.get("best_state"), float(state["best_value"])
            since_best, nonconverged_total = int(state["since_best"]), int(state["nonconverged"])
            done_epochs, elapsed = len(history), float(history[-1]["seconds"]) if history else 0.0
            log.info("resuming from %s after epoch %d", ckpt, done_epochs)
        else:
            log.info("ignoring %s: it was written with other settings", ckpt)
    t0 = time.perf_counter() - elapsed
    for epoch in range(done_epochs, opts.epochs):
        if opts.patience is not None and since_best >= opts.patience:
            break
        net.train()
        order = np.random.default_rng([opts.seed, epoch]).permutation(n)
        losses = []
        for start in range(0, n - cfg["batch"] + 1, cfg["batch"]):
            idx = order[start:start + cfg["batch"]]
            rows = _rows(train_params, idx)
            tens = problem.tensors(rows)
            y0 = net(features(family, rows))
            start_u = warm[idx] if bool(seen[idx].all()) else None
            y_corr, u = correct(problem, y0.detach(), tens, cfg["train_steps"], cfg["gamma"], start_u)
            y = problem.project(y0 + (y_corr - y0).detach())        # the authors' constant correction increment
            v, conv, u = problem.response(y, tens, u)
            warm[idx] = u.detach()
            seen[idx] = True
            nonconverged_total += int((~conv).sum())
            keep = (conv | opts.keep_nonconverged).to(y.dtype)
            loss = ((y.sum(1) + cfg["lam"] * v) * keep).sum() / keep.sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0,
                  "nonconverged_rows": nonconverged_total, "lr": opt.param_groups[0]["lr"]}
        if next(iter(valid.values())).shape[0]:
            record.update(validate(net, problem, valid, cfg["test_steps"], cfg["gamma"], evaluate))
            if opts.patience is not None:
                network_only = validate(net, problem, valid, 0, cfg["gamma"], evaluate)["valid_objective"]
                record["valid_objective_network_only"] = network_only
                value = min(record["valid_objective"], network_only)
                if value < best_value * (1.0 - opts.min_delta):
                    best_value, since_best = value, 0
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                else:
                    since_best += 1
                    if since_best == max(1, opts.patience // 2):
                        for group in opt.param_groups:
                            group["lr"] /= 3.0
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))
        torch.save({"fingerprint": fingerprint, "net": net.state_dict(), "opt": opt.state_dict(), "warm": warm,
                    "seen": seen, "history": json.dumps(history), "best_state": best_state, "best_value": best_value,
                    "since_best": since_best, "nonconverged": nonconverged_total}, ckpt)
    if best_state is not None:
        net.load_state_dict(best_state)
    meta = {"family": family, "structure_hash": s.digest(), "dataset_sha256": file_sha256(dataset),
            "dataset": Path(dataset).name, "seed": opts.seed, "epochs": len(history), "limit": opts.limit, **cfg,
            "n_in": n_in, "follower": "warm", "cold_starts": opts.cold_starts, "patience": opts.patience, "history": history,
            "command": " ".join(sys.argv)}
    if opts.choose_test_steps:
        full_valid = ds.split("valid").params
        sweep = {k: validate(net, problem, full_valid, k, cfg["gamma"], evaluate)["valid_objective"]
                 for k in TEST_STEP_GRID}
        meta["test_step_sweep"] = {str(k): v for k, v in sweep.items()}
        meta["test_steps"] = min(sweep, key=lambda k: (sweep[k], k))
        log.info("test-time corrections on all valid rows: %s; chosen %d", sweep, meta["test_steps"])
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
    y, _ = correct(problem, y0, problem.tensors(params), steps, gamma)
    scored = evaluate(problem.family, problem.s, y.detach().numpy(), params)
    return {"valid_objective": float(np.mean(scored["objective"])), "valid_cost": float(np.mean(scored["cost"])),
            "valid_violation": float(np.mean(scored["violation"]))}


#: Test-time correction settings tried by :func:`tune` on the valid split: steps, and step lengths per family
#: for the objective correction (the violation correction keeps the training's gamma).
TUNE_STEPS = (0, 1, 2, 3, 5, 10, 20, 40)
TUNE_GAMMAS = {"ccd-twotank": (1e-4, 3e-4, 1e-3, 3e-3), "ccd-hvac": (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)}
#: First step lengths of the search correction (:func:`search_path`), and its step counts.
TUNE_SEARCH_STEP0 = {"ccd-twotank": (1e-3, 1e-2), "ccd-hvac": (1e-2, 1e-1)}
TUNE_SEARCH_STEPS = (1, 2, 3, 5, 10, 20)


#: A cheaper correction (fewer steps, then the authors' cold start) is preferred when its valid objective is
#: within this relative margin of the best.
TUNE_MARGIN = 1e-3


def choose_correction(sweep: list[dict], max_steps: int | None = None, margin: float = TUNE_MARGIN) -> dict:
    """The cheapest entry of a tuning sweep whose valid objective is within ``margin`` (relative) of the best one
    (optionally among those with at most ``max_steps`` steps): fewest steps, then the authors' cold start, then
    the lowest objective."""
    rows = [r for r in sweep if max_steps is None or r["steps"] <= max_steps]
    if not rows:
        raise ValueError(f"no tuned correction with at most {max_steps} steps")
    best = min(r["valid_objective"] for r in rows)
    near = [r for r in rows if r["valid_objective"] <= best * (1.0 + margin)]
    return min(near, key=lambda r: (r["steps"], r.get("cold_starts", "authors") != "authors", r["valid_objective"]))


def tune(weights: Path, dataset: Path, n_valid: int = 500, steps_grid: tuple[int, ...] = TUNE_STEPS) -> dict:
    """Choose the test-time correction (kind, step length, steps) of a weight file on the valid split.

    Tries the paper's violation correction at the training step length and the objective correction
    (descending ``cost + kappa violation^2``, the family's score) at each of :data:`TUNE_GAMMAS`, for every count
    in ``steps_grid`` (default :data:`TUNE_STEPS`), on the first ``n_valid`` valid rows scored by the evaluator's
    own follower; stores :func:`choose_correction`'s pick and the whole sweep in the weight file's meta and its ``.json``.
    """
    from bilevelbench.families.ccd.generate import evaluate

    blob = torch.load(weights, weights_only=True)
    meta = blob["meta"]
    ds = InstanceSet.open(dataset)
    family, s = ds.family, ds.structure
    if meta["structure_hash"] != s.digest():
        raise ValueError(f"{weights} was trained on another structure than {dataset}")
    net = load_network(blob, family, s)
    valid = ds.split("valid").params
    valid = _rows(valid, np.arange(min(n_valid, next(iter(valid.values())).shape[0])))
    with torch.no_grad():
        y0 = net(features(family, valid))
    kinds = [("violation", float(meta["gamma"]))] + [("objective", g) for g in TUNE_GAMMAS[family]]
    # the two-tank method's first follower solve: the family's five starts, or the authors' one (5x cheaper)
    cold_options = ("family", "authors") if family == ccd_twotank.FAMILY else ("authors",)
    sweep = []
    for cold in cold_options:
        problem = CCDProblem(family, s, cold)
        tens = problem.tensors(valid)
        for kind, gamma in kinds + [("search", g) for g in TUNE_SEARCH_STEP0[family]]:
            weight = float(s.kappa) if kind != "violation" else None
            grid = tuple(k for k in steps_grid if k in TUNE_SEARCH_STEPS) if kind == "search" else steps_grid
            if not grid:
                continue
            path = (search_path(problem, y0, tens, max(grid), gamma, weight) if kind == "search" else
                    correction_path(problem, y0, tens, max(grid), gamma, objective_weight=weight))
            for k, y, _ in path:
                if k in grid and (k > 0 or (kind == "violation" and cold == cold_options[0])):
                    value = float(np.mean(evaluate(family, s, y.detach().numpy(), valid)["objective"]))
                    sweep.append({"cold_starts": cold, "correction": kind, "gamma": gamma, "steps": k,
                                  "valid_objective": value})
                    log.info("%s", json.dumps(sweep[-1]))
    best = choose_correction(sweep)
    meta.update({"test_correction": best["correction"], "test_gamma": best["gamma"], "test_steps": best["steps"],
                 "test_cold_starts": best["cold_starts"], "correction_sweep": sweep,
                 "correction_sweep_rows": len(y0)})
    torch.save({"meta": meta, "state_dict": blob["state_dict"]}, weights)
    weights.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train the L2O-with-correction model (Kotary et al., Algorithm 1) on a ccd data set. Without "
                    "options: the paper's settings. Each epoch is checkpointed next to --out; rerunning the same "
                    "command resumes.",
        epilog="example (trained to convergence, the committed '-converged' weights): python -m "
               "baselines.l2o_correction.ccd --dataset data/ccd-twotank.h5 --lam 100 --epochs 60 --patience 6 "
               "--choose-test-steps --out baselines/l2o_correction/weights/ccd-twotank-converged.pt")
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="epochs (with --patience: at most)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="train on the first N train instances only")
    parser.add_argument("--out", type=Path, default=None, help="weight file (default weights/NAME.pt)")
    parser.add_argument("--lam", type=float, default=None,
                        help="training penalty weight (default: the paper's, 10 two-tank / 100 HVAC)")
    parser.add_argument("--train-steps", type=int, default=None, help="correction steps in training (paper: 5)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (paper: 1e-3)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 128)")
    parser.add_argument("--patience", type=int, default=None,
                        help="stop when the valid objective has not improved by 0.2%% for this many epochs (the "
                             "rate is divided by 3 half-way); keeps the best epoch's weights")
    parser.add_argument("--choose-test-steps", action="store_true",
                        help=f"pick the test-time correction count from {TEST_STEP_GRID} on the whole valid split")
    parser.add_argument("--keep-nonconverged", action="store_true",
                        help="keep rows whose follower missed its tolerance in the loss (default: drop them)")
    parser.add_argument("--cold-starts", choices=("authors", "family"), default="authors",
                        help="two-tank: the method's follower starts from u = 0 only (authors) or from the family's "
                             "five starts, as the evaluator's defined response does (family)")
    parser.add_argument("--tune", action="store_true",
                        help="do not train: choose the test-time correction of the existing --out weights on the "
                             "valid split (violation or objective descent, step length, steps)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)
    name = InstanceSet.open(args.dataset).meta.get("name") or args.dataset.stem
    out = args.out or HERE / "weights" / f"{name}.pt"
    if args.tune:
        best = tune(out, args.dataset)
        print(f"{out}: {best}")
        return 0
    options = TrainOptions(epochs=args.epochs, seed=args.seed, limit=args.limit, lam=args.lam,
                           train_steps=args.train_steps, lr=args.lr, batch=args.batch, patience=args.patience,
                           choose_test_steps=args.choose_test_steps,
                           keep_nonconverged=args.keep_nonconverged, cold_starts=args.cold_starts)
    train(args.dataset, out=out, options=options)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
