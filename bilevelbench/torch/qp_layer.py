"""A batched, differentiable convex QP layer for the lower level of a bilevel QP.

Solves, for every row of a batch,

    z*(q, b) = argmin_z 1/2 z'Hz + q'z   s.t.  F z <= b

with ``H`` (n, n) positive definite and ``F`` (p, n) shared by the batch and
``q`` (B, n), ``b`` (B, p) per row. The forward pass is a batched Mehrotra
primal-dual interior-point method in float64; the backward pass differentiates
the KKT conditions of the solution's active set (implicit differentiation: no
unrolling of the iterations). For the follower of a bilevel QP: ``q = e``,
``b = h + G y``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bilevelbench.errors import SolverError, UsageError


@dataclass(frozen=True)
class IPMSettings:
    """A row is finished when the polished active-set point has primal infeasibility, negative multipliers
    and stationarity residual all below ``tol * (1 + max(|q|, |b|))``; at most ``max_iter`` iterations."""

    tol: float = 1e-9
    max_iter: int = 60
    #: ``"raise"``: rows that did not converge raise :class:`SolverError`; ``"nan"``: they are returned as NaN
    #: (``z``, multipliers and slacks) and the other rows are kept, for callers that can reject such points
    #: (a line search that may step to a ``y`` whose lower level is infeasible).
    on_failure: str = "raise"

    def __post_init__(self) -> None:
        if self.on_failure not in ("raise", "nan"):
            raise UsageError(f"on_failure must be 'raise' or 'nan'; received {self.on_failure!r}")
    #: A constraint counts as active in the backward pass when ``lambda_i > active_ratio * s_i``.
    active_ratio: float = 1.0


def _max_step(v: torch.Tensor, dv: torch.Tensor) -> torch.Tensor:
    """Largest alpha in (0, 1] with v + alpha dv >= 0, per row."""
    ratio = torch.where(dv < 0, -v / dv, torch.full_like(v, float("inf")))
    return torch.clamp(ratio.min(dim=1).values, max=1.0) if v.shape[1] else torch.ones(v.shape[0], dtype=v.dtype)


def _newton(state: tuple, r_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Newton direction of the interior point, reduced to the (n, n) system ``M dz = rhs``."""
    M, L, F, r_d, r_p, s, lam = state
    rhs = -r_d - ((-r_c + lam * r_p) / s) @ F
    if L is None:
        dz = torch.linalg.lstsq(M, rhs.unsqueeze(-1)).solution.squeeze(-1)
    else:
        dz = torch.cholesky_solve(rhs.unsqueeze(-1), L).squeeze(-1)
    ds = -r_p - dz @ F.T
    dlam = (-r_c - lam * ds) / s
    return dz, ds, dlam


def solve_qp_batch(H: torch.Tensor, F: torch.Tensor, q: torch.Tensor, b: torch.Tensor,
                   settings: IPMSettings = IPMSettings(), active_guess: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve the batch (no autograd); return ``z`` (B, n), multipliers ``lam`` (B, p) and slacks ``s`` (B, p).

    ``active_guess`` (B, p) bool, optional: a guess of each row's active set (for example the previous answer
    of a sequence of nearby problems). Every row is first polished on its guess; rows where that satisfies all
    KKT conditions are finished without any interior-point iteration, the others are solved from scratch. A
    wrong guess costs one linear solve, never accuracy.

    Every iteration also tries to *polish* each unfinished row: solve the equality-constrained QP of the
    active set the interior point currently predicts. A polished point that is primal and dual feasible
    satisfies every KKT condition, so it is the exact answer and the row is finished. This removes the
    interior point's slow endgame (large multipliers, near-degenerate rows) and gives machine precision.

    Raises
    ------
    SolverError
        If some rows did not converge in ``max_iter`` iterations (for example an infeasible row), unless
        ``settings.on_failure == "nan"``.
    """
    with torch.no_grad():
        B = q.shape[0]
        p = F.shape[0]
        Ft = F.T
        z = -torch.linalg.solve(H, q.T).T
        if p == 0:
            return z, q.new_zeros(B, 0), q.new_zeros(B, 0)
        s = torch.clamp(b - z @ Ft, min=1.0)
        lam = torch.ones_like(s)
        done = torch.zeros(B, dtype=torch.bool)
        diverged = torch.zeros(B, dtype=torch.bool)
        out_z, out_lam, out_s = z.clone(), lam.clone(), s.clone()
        if active_guess is not None and active_guess.shape == (B, p):
            pz, plam, ps, ok = _polish(H, F, q, b, active_guess.to(torch.bool), settings)
            out_z[ok], out_lam[ok], out_s[ok] = pz[ok], plam[ok], ps[ok]
            done |= ok
            if bool(torch.all(done)):
                return out_z, out_lam, out_s
        for _ in range(settings.max_iter):
            todo = ~done
            pz, plam, ps, ok = _polish(H, F, q, b, lam > settings.active_ratio * s, settings)
            new = todo & ok
            out_z[new], out_lam[new], out_s[new] = pz[new], plam[new], ps[new]
            done |= new
            todo = ~done & ~diverged
            if not bool(torch.any(todo)):
                break
            r_d = z @ H + q + lam @ F                     # H symmetric
            r_p = z @ Ft + s - b
            mu = (s * lam).mean(1)
            w = (lam / s).clamp(min=1e-14, max=1e14)
            M = H + torch.einsum("ki,bk,kj->bij", F, w, F)
            L, info = torch.linalg.cholesky_ex(M)
            use_lu = bool(torch.any(info[todo] > 0))
            state = (M, None if use_lu else L, F, r_d, r_p, s, lam)
            _, ds_a, dlam_a = _newton(state, s * lam)
            alpha_a = torch.minimum(_max_step(s, ds_a), _max_step(lam, dlam_a))
            mu_a = ((s + alpha_a[:, None] * ds_a) * (lam + alpha_a[:, None] * dlam_a)).mean(1)
            sigma = (mu_a / mu).clamp(min=0.0, max=1.0) ** 3
            dz, ds, dlam = _newton(state, s * lam + ds_a * dlam_a - (sigma * mu)[:, None])
            alpha = 0.99 * torch.minimum(_max_step(s, ds), _max_step(lam, dlam))
            alpha = torch.where(todo, alpha.clamp(max=1.0), torch.zeros_like(alpha))
            alpha = torch.nan_to_num(alpha, nan=0.0)[:, None]
            z, s, lam = z + alpha * dz, s + alpha * ds, lam + alpha * dlam
            blown = ~(torch.isfinite(z).all(1) & torch.isfinite(s).all(1) & torch.isfinite(lam).all(1))
            blown |= diverged
            if bool(torch.any(blown)):  # an infeasible row diverges: park it at a finite point, it stays unfinished
                diverged |= blown
                z[blown], s[blown], lam[blown] = 0.0, 1.0, 1.0
        bad = int(torch.sum(~done))
        if bad and settings.on_failure == "nan":
            out_z[~done], out_lam[~done], out_s[~done] = float("nan"), float("nan"), float("nan")
        elif bad:
            raise SolverError(f"batched QP: {bad} of {B} rows did not converge to an optimal point in "
                              f"{settings.max_iter} interior-point iterations (infeasible lower level for those "
                              "rows?)")
        return out_z, out_lam, out_s


def _active_kkt(H: torch.Tensor, F: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """Batched KKT matrix ``[[H, F_A'], [F_A, 0]]`` of each row's active set; inactive rows get ``-1`` on the
    diagonal, so their multiplier is pinned to 0. Symmetric, so it serves both the solve and its transpose."""
    B, (p, n) = active.shape[0], F.shape
    D = active.to(H.dtype)
    K = H.new_zeros(B, n + p, n + p)
    K[:, :n, :n] = H
    K[:, :n, n:] = F.T.unsqueeze(0) * D[:, None, :]
    K[:, n:, :n] = F.unsqueeze(0) * D[:, :, None]
    K[:, n:, n:] = torch.diag_embed(D - 1.0)
    return K


def _kkt_solve(K: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``K x = rhs`` per row; rows whose ``K`` is singular (dependent active rows) get the least-squares
    solution. Returns ``x`` and a mask of the rows that were regular."""
    x, info = torch.linalg.solve_ex(K, rhs.unsqueeze(-1))
    regular = info == 0
    x = x.squeeze(-1)
    if not bool(torch.all(regular)):
        sing = ~regular
        x[sing] = torch.linalg.pinv(K[sing], hermitian=True).matmul(rhs[sing].unsqueeze(-1)).squeeze(-1)
    return x, regular


def _polish(H, F, q, b, active, settings: IPMSettings):
    """Solve each row's equality-constrained QP on the given active set (B, p) bool; return the polished
    ``(z, lam, s)`` and a mask of rows where it is primal and dual feasible (hence optimal)."""
    n = F.shape[1]
    K = _active_kkt(H, F, active)
    rhs = torch.cat([-q, b * active], 1)
    sol, _ = _kkt_solve(K, rhs)
    z_p, lam_p = sol[:, :n], sol[:, n:] * active
    s_p = b - z_p @ F.T
    scale = 1.0 + torch.maximum(q.abs().amax(1), b.abs().amax(1))
    stationarity = (z_p @ H + q + lam_p @ F).abs().amax(1)
    tol = settings.tol * scale
    ok = ((s_p.amin(1) >= -tol) & (lam_p.amin(1) >= -tol) & torch.isfinite(sol).all(1) & (stationarity <= tol))
    return z_p, lam_p.clamp(min=0.0), s_p.clamp(min=0.0), ok


class _QPFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, b, H, F, settings, active_guess):
        z, lam, s = solve_qp_batch(H, F, q, b, settings, active_guess)
        active = (lam > settings.active_ratio * s) | ((s <= 0) & (lam > 0))
        ctx.save_for_backward(H, F, active)
        ctx.mark_non_differentiable(lam, active)
        return z, lam, active

    @staticmethod
    def backward(ctx, grad_z, grad_lam, grad_active):
        H, F, active = ctx.saved_tensors
        B, n = grad_z.shape
        p = F.shape[0]
        K = _active_kkt(H, F, active)
        D = active.to(H.dtype)
        rhs = torch.cat([grad_z, grad_z.new_zeros(B, p)], 1)
        sol, _ = _kkt_solve(K, rhs)
        u, v = sol[:, :n], sol[:, n:]
        grad_q = -u
        grad_b = v * D
        return grad_q, grad_b, None, None, None, None


class BatchedQP(torch.nn.Module):
    """Differentiable ``z*(q, b) = argmin 1/2 z'Hz + q'z s.t. F z <= b`` for a batch (float64).

    Parameters
    ----------
    H : (n, n) tensor
        Symmetric positive definite.
    F : (p, n) tensor
    settings : IPMSettings, optional
    warm_start : bool
        Guess each row's active set from the previous call of the same batch size (see
        :func:`solve_qp_batch`): much faster for sequences of nearby problems (correction steps, descent
        iterations, a swarm), a little slower for unrelated batches. Answers are the same either way.

    Examples
    --------
    >>> layer = BatchedQP(H, F)                                   # doctest: +SKIP
    >>> z = layer(e.expand(B, -1), h + y @ G.T)                   # follower's response, differentiable in y
    """

    def __init__(self, H: torch.Tensor, F: torch.Tensor, settings: IPMSettings | None = None,
                 warm_start: bool = False) -> None:
        super().__init__()
        H = torch.as_tensor(H, dtype=torch.float64)
        F = torch.as_tensor(F, dtype=torch.float64)
        if H.ndim != 2 or H.shape[0] != H.shape[1] or F.ndim != 2 or F.shape[1] != H.shape[0]:
            raise UsageError(f"expected H (n, n) and F (p, n), got H {tuple(H.shape)} and F {tuple(F.shape)}")
        H = 0.5 * (H + H.T)
        if int(torch.linalg.cholesky_ex(H).info) != 0:
            raise UsageError("H must be symmetric positive definite (its Cholesky factorisation failed)")
        self.register_buffer("H", H)
        self.register_buffer("F", F)
        self.settings = settings or IPMSettings()
        self.warm_start = bool(warm_start)
        self._last_active: torch.Tensor | None = None

    def forward(self, q: torch.Tensor, b: torch.Tensor, active_guess: torch.Tensor | None = None) -> torch.Tensor:
        """``z*`` (B, n); gradients flow to ``q`` and ``b``."""
        return self.solve(q, b, active_guess)[0]

    def solve(self, q: torch.Tensor, b: torch.Tensor, active_guess: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z*, lam*)``; ``lam*`` carries no gradient.

        ``active_guess`` (B, p) bool, optional: each row's guessed active set (for example from another
        solver); it replaces the warm start's guess for this call (see :func:`solve_qp_batch`).
        """
        n, p = self.H.shape[0], self.F.shape[0]
        if q.ndim != 2 or q.shape[1] != n or b.ndim != 2 or b.shape != (q.shape[0], p):
            raise UsageError(f"expected q (B, {n}) and b (B, {p}), got {tuple(q.shape)} and {tuple(b.shape)}")
        if not (bool(torch.isfinite(q).all()) and bool(torch.isfinite(b).all())):
            raise UsageError("q and b must be finite; received NaN or inf")
        q, b = q.to(torch.float64), b.to(torch.float64)
        guess = active_guess if active_guess is not None else (self._last_active if self.warm_start else None)
        z, lam, active = _QPFunction.apply(q, b, self.H, self.F, self.settings, guess)
        if self.warm_start:
            self._last_active = active       # the forward pass's active sets: the next call's guess
        return z, lam
