"""Differentiable followers of the control co-design families (implicit differentiation, no unrolling).

Both layers solve the lower level without autograd (the families' own solvers, so the response is the one the
evaluator scores), then rebuild the answer with one Newton step on the free variables,

    u_out = u* - P_F H^{-1} P_F grad_u phi(u*, y),

with ``H`` detached (the exact Hessian for the two-tank, by ``torch.func``, Gauss-Newton where it is singular;
the generalised Hessian of the piecewise quadratic for HVAC) and ``grad_u phi`` built with autograd through the design ``y``. At a converged ``u*`` the
step is zero (to rounding), and ``d u_out / d y = -H_FF^{-1} d grad_F / d y`` is the implicit-function derivative
of the converged subproblem on its active set (Amos et al.'s differentiable MPC does the same through its LQR
step). Rows whose follower did not converge are flagged in the returned ``converged`` mask: callers count them
and decide (the training loops drop them from the loss and report how many).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from bilevelbench.families.ccd import hvac as ccd_hvac
from bilevelbench.families.ccd import twotank as ccd_twotank
from bilevelbench.families.ccd.twotank import free_block


def _free_at(u, g, lo: float, hi: float, tol: float = 1e-9):
    return ~(((u <= lo + tol) & (g > 0)) | ((u >= hi - tol) & (g < 0)))


def twotank_hessian(s: ccd_twotank.TwoTankStructure, u: torch.Tensor, design: torch.Tensor, p: torch.Tensor):
    """The exact Hessian (B, 2T, 2T) of the lower objective in ``u`` at ``u`` (``torch.func``, detached)."""
    T = s.steps

    def phi(u_row, c_row, p_row):
        x = ccd_twotank.rollout(s, u_row.view(1, T, 2), c_row.view(1, 2))
        return ccd_twotank.lower_objective(s, x, u_row.view(1, T, 2), p_row.view(1, 2))[0]

    with torch.no_grad():
        return torch.func.vmap(torch.func.hessian(phi))(u.detach(), design, p)


class TwoTankResponse(NamedTuple):
    """The follower's controls (detached), their implicit rebuild (differentiable in the design), convergence."""

    converged: torch.Tensor  # (B,) bool: the follower met its tolerance
    u: torch.Tensor          # (B, 2T): the follower's controls, for warm starts
    u_out: torch.Tensor      # (B, 2T): ``u - H^{-1} g``, differentiable in the design (equals ``u`` where converged)

    def final_state(self, s: ccd_twotank.TwoTankStructure, design: torch.Tensor) -> torch.Tensor:
        """``x_T`` (B, 2) under ``u_out``: differentiable in ``design`` through the implicit function."""
        return ccd_twotank.rollout(s, self.u_out.view(design.shape[0], s.steps, 2), design)[:, -1]


def twotank_response(s: ccd_twotank.TwoTankStructure, design: torch.Tensor, p: torch.Tensor,
                     u0: torch.Tensor | None = None, hessian: str = "autodiff") -> TwoTankResponse:
    """The follower's response to ``design`` (B, 2), rebuilt by one implicit Newton step (differentiable).

    Parameters
    ----------
    u0 : tensor (B, 2T), optional
        Warm start: projected Newton from these controls only (:func:`ccd_twotank.solve_from`). Default: the
        family's defined response from the fixed starts of ``s`` (:func:`ccd_twotank.solve_follower`).
    hessian : {"autodiff", "closed-form"}
        ``torch.func.hessian`` of the rollout, or :func:`ccd_twotank.exact_hessian` (same values away from
        states exactly on the clip's edge, about a hundred times cheaper).
    """
    B, T = design.shape[0], s.steps
    if u0 is None:
        res = ccd_twotank.solve_follower(s, design.detach().numpy(), p.detach().numpy())
        u_star, converged = torch.as_tensor(res.u).reshape(B, 2 * T), torch.as_tensor(res.converged)
    else:
        u_star, _, _, converged = ccd_twotank.solve_from(s, design.detach(), p.detach(), u0)
    x, S = ccd_twotank.rollout_with_sensitivity(s, u_star.view(B, T, 2), design)
    r = (x[:, 1:] - p[:, None, :]).reshape(B, -1)
    g = torch.bmm(S.transpose(1, 2), r.unsqueeze(-1)).squeeze(-1) + s.control_weight * u_star
    if hessian == "closed-form":
        with torch.no_grad():
            H = ccd_twotank.exact_hessian(s, u_star, design.detach(), p.detach())
    elif hessian == "autodiff":
        H = twotank_hessian(s, u_star, design.detach(), p.detach())
    else:
        raise ValueError(f"hessian must be 'autodiff' or 'closed-form', not {hessian!r}")
    free = _free_at(u_star, g.detach(), 0.0, 1.0)
    fm = free.to(g.dtype)
    Hm = free_block(H, fm)
    step, info = torch.linalg.solve_ex(Hm, (g * fm).unsqueeze(-1))
    if bool((info != 0).any()):                 # singular exact Hessian: fall back to Gauss-Newton on those rows
        gn = (torch.bmm(S.transpose(1, 2), S) + s.control_weight * torch.eye(2 * T, dtype=S.dtype)).detach()
        gn = free_block(gn, fm)
        bad = info != 0
        step = torch.where(bad.view(-1, 1, 1), torch.linalg.solve(gn, (g * fm).unsqueeze(-1)), step)
    return TwoTankResponse(converged, u_star, u_star - step.squeeze(-1))


def twotank_final_state(s: ccd_twotank.TwoTankStructure, design: torch.Tensor, p: torch.Tensor):
    """``x_T`` (B, 2) of the follower's defined response to ``design`` (B, 2), differentiable in ``design``.

    Returns ``(x_T, converged)``; ``converged`` (B,) bool marks rows whose chosen start met the tolerance. The
    best-known search uses this form (autodiff Hessian), so its labels do not move.
    """
    res = twotank_response(s, design, p)
    return res.final_state(s, design), res.converged


class HVACResponse(NamedTuple):
    """Slacks of the HVAC follower's response (differentiable in the design), convergence, controls."""

    slack: torch.Tensor      # (B, N z)
    converged: torch.Tensor  # (B,) bool
    u: torch.Tensor          # (B, N nu), for warm starts


class HVACLayer:
    """Slacks of the HVAC follower's response, differentiable in the design."""

    def __init__(self, s: ccd_hvac.HVACStructure) -> None:
        self.s = s
        self.cond = ccd_hvac.Condensed(s)

    def slacks(self, design: torch.Tensor, x0, ymin, ymax, d):
        """``(slack (B, N z), converged (B,))``; slack = relu(ymin - y) + relu(y - ymax) at the response."""
        res = self.response(design, x0, ymin, ymax, d)
        return res.slack, res.converged

    def response(self, design: torch.Tensor, x0, ymin, ymax, d, u0: torch.Tensor | None = None) -> HVACResponse:
        """Slacks (differentiable in ``design``), convergence and controls; ``u0`` warm-starts the QP solve."""
        s = self.s
        res = ccd_hvac.solve_follower_torch(s, self.cond, design.detach(), x0, ymin, ymax, d, u0=u0)
        G = self.cond.gain(design)
        lo, hi = ymin[:, 1:].flatten(1), ymax[:, 1:].flatten(1)
        u_star = res.u
        y = res.y_free + torch.bmm(G, u_star.unsqueeze(-1)).squeeze(-1)
        g, _ = ccd_hvac._grad_hess(s, u_star, y, lo, hi, G)
        _, H = ccd_hvac._grad_hess(s, u_star, y.detach(), lo, hi, G.detach())
        free = _free_at(u_star, g.detach(), s.u_lo, s.u_hi)
        fm = free.to(g.dtype)
        L = torch.linalg.cholesky(free_block(H, fm))
        u_out = u_star - torch.cholesky_solve((g * fm).unsqueeze(-1), L).squeeze(-1)
        y_out = res.y_free + torch.bmm(G, u_out.unsqueeze(-1)).squeeze(-1)
        slack = torch.relu(lo - y_out) + torch.relu(y_out - hi)
        return HVACResponse(slack, res.iterations < s.follower_max_iter, u_star)


__all__ = ["HVACLayer", "HVACResponse", "TwoTankResponse", "twotank_final_state", "twotank_hessian", "twotank_response"]
