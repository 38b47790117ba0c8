"""Learning to optimize a parametric MIQP (Le, Xie and Mangharam, L4DC 2026): a network predicts the integers,
the relaxed QP layer (:mod:`bilevelbench.torch.miqp_layer`) completes the continuous part.

Integer encoding. Every integer ``x_j`` in ``[lb_j, ub_j]`` is one output ``z_j`` of the network with the
*ordinal* relaxation ``lb_j + (ub_j - lb_j) sigmoid(z_j)``, rounded to the nearest integer in the forward pass
and passed straight through in the backward pass. For the robot's binaries this is the paper's sigmoid with
straight-through rounding; for the tank's pump level ``delta_k in {0, 1, 2, 3}`` it is a clamped scalar,
chosen over a 4-way softmax because the level is ordinal (the objective ``rho delta^2``, the dynamics
``B_delta delta`` and the ramp ``|delta_k - delta_{k-1}| <= 1`` are all functions of its value, so a gradient
in ``delta`` is meaningful and one output per step suffices). The supervised loss is the binary cross-entropy
of ``sigmoid(z_j)`` against ``(x*_j - lb_j) / (ub_j - lb_j)``, minimised exactly at the label's value.

Losses (per instance, averaged over the batch)::

    objective   f(x; theta)                                   the MIQP objective at [x_C*(x_I); x_I]
    violation   sum_i max(0, G_i x + K_i theta - h_i) / s_i   every row, integer-only rows included
    supervised  BCE(sigmoid(z), label)                         certified labels only

with ``s_i = max(1, ||G_i||_inf)``, the scale the violation metric uses. For a robot obstacle row that is
the big-M coefficient: the row's gradient in its binary is then of the same order as the disjunction row's
(unscaled, it is M times larger and drives every side to "relaxed" within an epoch). Every term that depends
on the continuous part still reaches a binary through the QP, where a binding side moves its bound by M: the
objective's and the state rows' gradients in the binaries are about M times those of the integer-only rows.
The authors weight the objective lightly for the robot (their code: 1e-5 against 1 for the penalties;
``--w-obj``); ``int_weight`` (``--int-weight``) scales the integer-only rows up to the same order.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc.miqp import MIQPStructure, row_scale
from bilevelbench.families.mimpc.miqp_layer import RelaxedMIQPLayer, RelaxedSolution


def mlp(sizes: list[int]) -> torch.nn.Sequential:
    """ReLU MLP with the given layer sizes (no activation after the last layer), float64."""
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(torch.nn.Linear(a, b, dtype=torch.float64))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


class _RoundST(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_st(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through)."""
    return _RoundST.apply(x)


class IntegerPolicy(torch.nn.Module):
    """``theta -> x_I``: normalised input, ReLU MLP, ordinal sigmoid per integer, straight-through rounding.

    Parameters
    ----------
    structure : MIQPStructure
    theta_mean, theta_std : (p,) arrays
        Input normalisation (train statistics); stored as buffers.
    hidden : list of int
        Hidden widths (the paper: four layers of 128).
    """

    def __init__(self, structure: MIQPStructure, theta_mean: np.ndarray, theta_std: np.ndarray,
                 hidden: list[int] | tuple[int, ...] = (128, 128, 128, 128)) -> None:
        super().__init__()
        s = structure
        lo, hi = s.lb[s.integer], s.ub[s.integer]
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UsageError("every integer variable needs finite bounds for the ordinal encoding")
        self.net = mlp([s.p, *map(int, hidden), int(s.integer.sum())])
        dt = torch.float64
        self.register_buffer("theta_mean", torch.tensor(np.asarray(theta_mean, float), dtype=dt))
        self.register_buffer("theta_std", torch.tensor(np.maximum(np.asarray(theta_std, float), 1e-8), dtype=dt))
        self.register_buffer("lo", torch.tensor(lo, dtype=dt))
        self.register_buffer("span", torch.tensor(hi - lo, dtype=dt))

    def logits(self, theta: torch.Tensor) -> torch.Tensor:
        return self.net((theta.to(torch.float64) - self.theta_mean) / self.theta_std)

    def relaxed(self, logits: torch.Tensor) -> torch.Tensor:
        """The continuous value each logit encodes (in ``[lb, ub]``)."""
        return self.lo + self.span * torch.sigmoid(logits)

    def forward(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_I, logits)``: rounded integers (straight-through gradients) and the raw outputs."""
        z = self.logits(theta)
        return round_st(self.relaxed(z)), z

    def supervised_loss(self, logits: torch.Tensor, x_int_label: torch.Tensor) -> torch.Tensor:
        """Mean binary cross-entropy of the encoded labels (per instance: summed over the integers)."""
        target = ((x_int_label.to(torch.float64) - self.lo) / self.span).clamp(0.0, 1.0)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return bce.sum(1)


class MIQPTerms(torch.nn.Module):
    """Objective and constraint violation of a full decision ``x`` in torch (float64), per instance."""

    def __init__(self, structure: MIQPStructure) -> None:
        super().__init__()
        s = structure
        n = s.n
        dt = torch.float64
        self.register_buffer("Wxx", torch.tensor(s.Wxx, dtype=dt))
        self.register_buffer("Wtx", torch.tensor(s.W[n:, :n], dtype=dt))
        self.register_buffer("Wtt", torch.tensor(s.W[n:, n:], dtype=dt))
        self.register_buffer("cx", torch.tensor(s.c[:n], dtype=dt))
        self.register_buffer("ct", torch.tensor(s.c[n:], dtype=dt))
        self.c0 = float(s.c0)
        cont = ~s.integer
        has_c = np.abs(s.G[:, cont]).max(axis=1, initial=0.0) > 0
        scale = row_scale(s)
        self.register_buffer("G", torch.tensor(s.G / scale[:, None], dtype=dt))
        self.register_buffer("K", torch.tensor(s.K / scale[:, None], dtype=dt))
        self.register_buffer("h", torch.tensor(s.h / scale, dtype=dt))
        self.register_buffer("int_only", torch.tensor(~has_c))

    def objective(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.to(torch.float64)
        quad = 0.5 * ((x @ self.Wxx) * x).sum(1) + ((theta @ self.Wtx) * x).sum(1) + x @ self.cx
        const = 0.5 * ((theta @ self.Wtt) * theta).sum(1) + theta @ self.ct + self.c0
        return quad + const

    def violation(self, x: torch.Tensor, theta: torch.Tensor, int_weight: float = 1.0) -> torch.Tensor:
        """Summed scaled violation of every row; integer-only rows count ``int_weight`` times."""
        res = torch.relu(x @ self.G.T + theta.to(torch.float64) @ self.K.T - self.h)
        if int_weight != 1.0:
            res = torch.where(self.int_only, int_weight * res, res)
        return res.sum(1)

    def violation_int_only(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Summed violation of the integer-only rows."""
        res = x @ self.G[self.int_only].T + theta.to(torch.float64) @ self.K[self.int_only].T - self.h[self.int_only]
        return torch.relu(res).sum(1)


class MIQPL2O(torch.nn.Module):
    """Integer policy + relaxed QP layer: ``theta -> (x, x_I, logits, slack)``."""

    def __init__(self, structure: MIQPStructure, theta_mean: np.ndarray, theta_std: np.ndarray,
                 hidden: list[int] | tuple[int, ...] = (128, 128, 128, 128), rho: float = 1e4,
                 slack: str = "step") -> None:
        super().__init__()
        self.policy = IntegerPolicy(structure, theta_mean, theta_std, hidden)
        self.layer = RelaxedMIQPLayer(structure, rho=rho, slack=slack)
        self.terms = MIQPTerms(structure)

    def forward(self, theta: torch.Tensor) -> tuple[RelaxedSolution, torch.Tensor, torch.Tensor]:
        """Differentiable pass: the layer's solution, the integers and the logits."""
        x_int, logits = self.policy(theta)
        return self.layer(theta, x_int), x_int, logits

    @torch.no_grad()
    def predict(self, theta: np.ndarray, repair: int = 0, moves: bool = False) -> np.ndarray:
        """Full decisions (B, n) for a batch: exact integers, continuous part from the relaxed QP.

        ``repair`` > 0: where the prediction needs slack or breaks an integer-only row, also try the
        ``repair`` single changes of the least certain integers (each rounded the other way) and keep the
        feasible candidate with the lowest objective (the network's own answer when none is feasible).
        ``moves``: also try the step moves of :func:`step_moves` (the integer plan shifted in time, the
        integers of the first or last steps raised or lowered together, floor and ceiling of the network's
        values). Candidates are screened by quadprog on the QP without slacks: an infeasible one costs one
        active-set solve, not a relaxed QP.
        """
        theta_t = torch.as_tensor(np.asarray(theta, dtype=np.float64))
        value = self.policy.relaxed(self.policy.logits(theta_t))
        x_int = torch.round(value)
        sol = self.layer.solve_exact(theta_t, x_int)
        X = sol.x.numpy()
        if repair > 0 or moves:
            X = self._repair(theta_t, value, X, self.infeasible(sol, theta_t), int(repair), moves)
        return X

    def infeasible(self, sol: RelaxedSolution, theta: torch.Tensor) -> np.ndarray:
        """Rows whose relaxed QP needed slack or whose integers break an integer-only row."""
        bad = sol.slack.amax(1).numpy() > 1e-9
        return bad | (self.terms.violation_int_only(sol.x, theta).numpy() > 1e-9)

    def candidates(self, value: torch.Tensor, k: int, moves: bool) -> torch.Tensor:
        """Candidate integers (R, C, n_I) around the rounded ``value`` (R, n_I), clipped to the bounds."""
        base = torch.round(value)
        cands = []
        k = min(k, value.shape[1])
        if k > 0:
            doubt = (value - base).abs()                        # 0.5: on the rounding boundary
            flip = torch.topk(doubt, k, dim=1).indices          # (R, k)
            step = torch.where(value >= base, 1.0, -1.0).to(value.dtype)
            single = base[:, None, :].repeat(1, k, 1)           # (R, k, n_I)
            r_idx = torch.arange(value.shape[0])[:, None].expand(-1, k)
            c_idx = torch.arange(k)[None, :].expand(value.shape[0], -1)
            single[r_idx, c_idx, flip] += step[r_idx, flip]
            cands.append(single)
        if moves:
            cands.append(step_moves(value, int(self.layer.structure.extra["horizon"])))
        lo, hi = self.policy.lo, self.policy.lo + self.policy.span
        return torch.minimum(torch.maximum(torch.cat(cands, 1), lo), hi)

    def _repair(self, theta: torch.Tensor, value: torch.Tensor, X: np.ndarray, bad: np.ndarray, k: int,
                moves: bool) -> np.ndarray:
        rows = np.flatnonzero(bad)
        if rows.size == 0:
            return X
        cand = self.candidates(value[rows], k, moves)          # (R, C, n_I)
        C = cand.shape[1]
        cand = cand.reshape(-1, cand.shape[2])
        th = theta[rows].repeat_interleave(C, dim=0)
        sol = self.layer.solve_exact(th, cand, relax_infeasible=False)   # only feasible candidates matter
        ok = ~self.infeasible(sol, th)
        f = self.terms.objective(sol.x, th).numpy()
        f = np.where(ok, f, np.inf).reshape(rows.size, C)
        best = f.argmin(1)
        Xc = sol.x.numpy().reshape(rows.size, C, -1)
        for j, r in enumerate(rows):
            if np.isfinite(f[j, best[j]]):
                X[r] = Xc[j, best[j]]
        return X


#: Time shifts (in horizon steps) of the integer plan tried by :func:`step_moves`; positive delays.
SHIFTS = (1, 2, 3, -1, -2)


def step_moves(value: torch.Tensor, horizon: int) -> torch.Tensor:
    """Moves of an MPC's integer plan that keep its shape in time, for integers stored step by step
    (``n_I = horizon * per_step``, step-major, as both MI-MPC families store them).

    From the rounded plan ``d`` (R, H, per_step): ``d`` shifted by each of :data:`SHIFTS` steps (the edge
    step repeated), ``d`` with the first ``j`` or the last ``j`` steps raised or lowered by one
    (``j = 1..H``), and ``floor(value)`` and ``ceil(value)``: ``2 + len(SHIFTS) + 4H`` candidates (R, C, n_I),
    not clipped. A plan that is right but early or late by a step (the tank's pump against a nearly full
    tank) is one move away here, and many single changes away.
    """
    R, n = value.shape
    if n % horizon:
        raise UsageError(f"step moves need the integers stored step by step: {n} integers, horizon {horizon}")
    base = torch.round(value)
    d = base.reshape(R, horizon, -1)
    out = [torch.floor(value), torch.ceil(value)]
    for shift in SHIFTS:
        if shift > 0:
            moved = torch.cat([d[:, :1].expand(-1, shift, -1), d[:, :-shift]], 1)
        else:
            moved = torch.cat([d[:, -shift:], d[:, -1:].expand(-1, -shift, -1)], 1)
        out.append(moved.reshape(R, n))
    steps = torch.arange(horizon)
    for j in range(1, horizon + 1):
        first = (steps < j).to(value.dtype)[None, :, None]
        last = (steps >= horizon - j).to(value.dtype)[None, :, None]
        for mask in (first, last):
            for sign in (1.0, -1.0):
                out.append((d + sign * mask).reshape(R, n))
    return torch.stack(out, 1)
