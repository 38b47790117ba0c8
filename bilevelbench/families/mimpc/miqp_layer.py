"""The relaxed continuous QP of a parametric MIQP with its integers fixed, as a batched differentiable layer.

Le, Xie and Mangharam (L4DC 2026, eq. 10) fix the integers ``x_I`` predicted by a network and solve the
continuous part with slack variables added to the constraints, so that the layer always has an answer::

    min_{x_C, s}  1/2 x_C' P x_C + q(theta, x_I)' x_C + rho' s + eps/2 |s|^2
    s.t.          A x_C - E s <= r(theta, x_I),   s >= 0,   lb_C <= x_C <= ub_C

with ``P = W_CC``, ``q = c_C + W_C,theta theta + W_CI x_I`` and, for every row of ``G x + K theta <= h`` that
involves a continuous variable, ``r = h - K theta - G_I x_I``. Rows with integers only (``disjunction``,
``ramp``) are not part of the QP; the training loss penalises them.

Two exact reductions keep the QP small (bilevelbench's condensed MPC has 400 such rows for the robot):

* rows whose continuous coefficients are equal up to a positive factor are *merged*: ``a'x_C <= r_i`` for all
  ``i`` is ``a'x_C <= min_i r_i``. The robot's box rows and its 240 big-M obstacle rows are bounds on the
  predicted positions, so they merge into 4 rows per step (160 rows with the velocity rows instead of 400).
  The minimum is exact for any real ``x_I`` and its (sub)gradient reaches the row that binds.
* one slack per *horizon step*, shared by the merged rows of that step (the step of a row is the latest input
  it involves). Every merged row of the condensed MPCs depends on the inputs, so every row has a slack and
  the QP is feasible for any ``theta`` and ``x_I`` (a fast ``v_0`` that cannot stop before the box edge, or
  two opposite sides of an obstacle enforced at once, becomes slack, not an infeasible layer).

With ``rho`` larger than the multipliers of the hard QP the slack penalty is exact: when the integers admit a
feasible continuous part the slacks are zero and the layer returns the hard QP's solution.

Solving. Each row's active set comes from a fast per-instance solver: quadprog's dual active-set method on the
QP without slacks first (the usual case: the integers admit a feasible continuous part, and the multipliers are
below ``rho``; about 0.07 ms for the tank's 40 inputs and 120 rows), then OSQP (polishing on) on the relaxed QP,
then HiGHS's active-set QP solver for what OSQP does not finish.
:class:`BatchedQP` then solves the KKT system of that active set, checks every KKT condition (rows where the
guess fails go to its interior-point method) and differentiates the solution implicitly. Without autograd,
:meth:`RelaxedMIQPLayer.solve_exact` returns the polished answers that pass a KKT check in numpy as they are
and sends the other rows through :class:`BatchedQP`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc.miqp import MIQPStructure
from bilevelbench.qp import _stdout_silenced
from bilevelbench.torch.qp_layer import BatchedQP, IPMSettings

log = logging.getLogger(__name__)

#: Relative tolerance under which two normalised rows count as the same row.
MERGE_TOL = 1e-12
#: Slack layouts: one per horizon step (shared by the step's merged rows), or one per merged row that
#: involves an integer variable (the other rows still share their step's slack).
SLACK_MODES = ("step", "row")


@dataclass(frozen=True)
class MergedRows:
    """Rows of ``G x + K theta <= h`` that involve continuous variables, merged by continuous coefficients.

    Attributes
    ----------
    A : (m, n_C) array
        Distinct continuous coefficient rows, each scaled to unit infinity norm.
    members : (m, k) int array
        Original row indices merged into each row, padded with ``-1``.
    scale : (rows,) array
        The factor each original row was divided by (``||G_C,i||_inf``; 1 for rows not in the QP).
    step : (m,) int array
        Horizon step of each merged row (the latest continuous block it involves).
    """

    A: np.ndarray
    members: np.ndarray
    scale: np.ndarray
    step: np.ndarray


def merge_rows(s: MIQPStructure, steps: int | None = None) -> MergedRows:
    """Merge the rows with continuous variables whose continuous parts are positive multiples of each other.

    ``steps``: the number of equal blocks the continuous variables form (the horizon; default
    ``s.extra["horizon"]``), used to give each merged row its step.
    """
    cont = ~s.integer
    n_c = int(cont.sum())
    if steps is None:
        if "horizon" not in s.extra:
            raise UsageError("merge_rows needs the number of steps: pass steps= or a structure with extra['horizon']")
        steps = int(np.asarray(s.extra["horizon"]))
    if steps <= 0 or n_c % steps:
        raise UsageError(f"{n_c} continuous variables do not form {steps} equal steps")
    GC = s.G[:, cont]
    norm = np.abs(GC).max(axis=1)
    rows = np.flatnonzero(norm > 0)
    scale = np.ones(s.G.shape[0])
    scale[rows] = norm[rows]
    normal = GC[rows] / norm[rows, None]
    key = np.round(normal / MERGE_TOL) * MERGE_TOL
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(first)                      # merged rows in the order of their first member
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    group = rank[inverse]
    m = order.size
    counts = np.bincount(group, minlength=m)
    members = -np.ones((m, int(counts.max())), dtype=np.int64)
    fill = np.zeros(m, dtype=np.int64)
    for row, g in zip(rows, group):
        members[g, fill[g]] = row
        fill[g] += 1
    A = normal[first[order]]
    last = np.array([np.flatnonzero(np.abs(a) > 0).max() for a in A])
    per_step = n_c // steps
    return MergedRows(A=A, members=members, scale=scale, step=last // per_step)


@dataclass
class RelaxedSolution:
    """The layer's answer for a batch: continuous part ``x_C`` (B, n_C), slacks (B, n_s), full ``x`` (B, n)."""

    x_cont: torch.Tensor
    slack: torch.Tensor
    x: torch.Tensor


class RelaxedMIQPLayer(torch.nn.Module):
    """``x_C*(theta, x_I)``: the slack-relaxed continuous QP (module docstring), batched and differentiable in
    ``x_I`` (float64).

    Parameters
    ----------
    structure : MIQPStructure
    rho : float
        Penalty per unit of slack (L1); large enough that slacks are zero whenever the integers allow it.
    slack_ridge : float
        ``eps`` of ``eps/2 |s|^2``, which makes the QP's Hessian positive definite.
    steps : int, optional
        Horizon length (default ``structure.extra["horizon"]``).
    slack : {"step", "row"}
        ``"step"``: one slack per step, shared by the step's merged rows. ``"row"``: one slack per merged row
        that involves an integer (others share their step's): an infeasible choice of integers then shows up
        on the rows that cause it (with a shared slack, the L1 penalty spreads the violation over every row of
        the step, e.g. over all four sides of an obstacle the robot is asked to avoid on both sides).
    settings : IPMSettings, optional
        Settings of :class:`BatchedQP` (its interior point runs only where the active-set guess fails).
    """

    def __init__(self, structure: MIQPStructure, rho: float = 1e4, slack_ridge: float = 1e-6,
                 steps: int | None = None, settings: IPMSettings | None = None, slack: str = "step") -> None:
        super().__init__()
        if not rho > 0 or not slack_ridge > 0:
            raise UsageError(f"rho and slack_ridge must be > 0, got {rho} and {slack_ridge}")
        if slack not in SLACK_MODES:
            raise UsageError(f"slack must be one of {', '.join(SLACK_MODES)}, got {slack!r}")
        self.slack_mode = slack
        s = structure
        self.structure = s
        self.rho, self.slack_ridge = float(rho), float(slack_ridge)
        cont, integ = ~s.integer, s.integer
        self.n, self.n_c, self.n_i = s.n, int(cont.sum()), int(integ.sum())
        merged = merge_rows(s, steps)
        self.merged = merged
        m = merged.A.shape[0]
        group = merged.step.copy()
        if slack == "row":
            # every merged row that involves an integer gets its own slack; the others share their step's
            with_int = np.array([np.any(s.G[mem[mem >= 0]][:, integ] != 0) for mem in merged.members])
            group = np.where(with_int, merged.step.max() + 1 + np.arange(m), merged.step)
        step_ids, slack_of_row = np.unique(group, return_inverse=True)
        ns = step_ids.size
        self.n_s, self.n_rows = ns, m
        E = np.zeros((m, ns))
        E[np.arange(m), slack_of_row.reshape(-1)] = 1.0
        lb, ub = s.lb[cont], s.ub[cont]
        has_ub, has_lb = np.isfinite(ub), np.isfinite(lb)
        eye = np.eye(self.n_c)
        F = np.block([[merged.A, -E],
                      [np.zeros((ns, self.n_c)), -np.eye(ns)],
                      [eye[has_ub], np.zeros((int(has_ub.sum()), ns))],
                      [-eye[has_lb], np.zeros((int(has_lb.sum()), ns))]])
        P = s.Wxx[np.ix_(cont, cont)]
        H = np.block([[P, np.zeros((self.n_c, ns))], [np.zeros((ns, self.n_c)), slack_ridge * np.eye(ns)]])
        self.qp = BatchedQP(torch.tensor(H), torch.tensor(F), settings or IPMSettings(on_failure="nan"))
        #: The same QP with no interior-point iteration: only the active-set guess is polished and checked
        #: (rows where it fails come back as NaN).
        self.qp_guess = BatchedQP(torch.tensor(H), torch.tensor(F),
                                  IPMSettings(tol=self.qp.settings.tol, max_iter=0, on_failure="nan"))
        self._H, self._F = H, F
        self._bounds_b = np.concatenate([ub[has_ub], -lb[has_lb]])
        dt = torch.float64
        n = s.n
        # q(theta, x_I) = c_C + theta W_theta,C + x_I W_I,C
        self.register_buffer("c_c", torch.tensor(s.c[:n][cont], dtype=dt))
        self.register_buffer("W_tc", torch.tensor(s.W[n:, :n][:, cont], dtype=dt))
        self.register_buffer("W_ic", torch.tensor(s.Wxx[np.ix_(integ, cont)], dtype=dt))
        # r_i(theta, x_I) / scale_i for every original row, then the minimum over each merged row's members
        sc = merged.scale
        self.register_buffer("h_s", torch.tensor(s.h / sc, dtype=dt))
        self.register_buffer("K_s", torch.tensor(s.K / sc[:, None], dtype=dt))
        self.register_buffer("GI_s", torch.tensor(s.G[:, integ] / sc[:, None], dtype=dt))
        self.register_buffer("members", torch.tensor(np.where(merged.members < 0, s.G.shape[0], merged.members)))
        self.register_buffer("rho_vec", torch.full((ns,), float(rho), dtype=dt))
        self.register_buffer("bounds_b", torch.tensor(self._bounds_b, dtype=dt))
        #: ``cat([x_C, x_I])[:, order]`` is ``x`` in the structure's order.
        self.register_buffer("order", torch.from_numpy(np.argsort(np.concatenate(
            [np.flatnonzero(cont), np.flatnonzero(integ)]))))
        self._oracle = None

    # -- data of the QP ------------------------------------------------------------------------------
    def qp_data(self, theta: torch.Tensor, x_int: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q, b)`` of the layer's QP in ``z = [x_C; s]`` for a batch, differentiable in ``x_int``."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        x_int = x_int.to(torch.float64)
        if theta.ndim != 2 or x_int.ndim != 2 or x_int.shape != (theta.shape[0], self.n_i):
            raise UsageError(f"expected theta (B, {self.structure.p}) and x_int (B, {self.n_i}), got "
                             f"{tuple(theta.shape)} and {tuple(x_int.shape)}")
        B = theta.shape[0]
        q = torch.cat([self.c_c + theta @ self.W_tc + x_int @ self.W_ic, self.rho_vec.expand(B, -1)], 1)
        r = self.h_s - theta @ self.K_s.T - x_int @ self.GI_s.T
        r = torch.cat([r, r.new_full((B, 1), float("inf"))], 1)            # the padding column
        r = r[:, self.members].amin(dim=2)
        b = torch.cat([r, r.new_zeros(B, self.n_s), self.bounds_b.expand(B, -1)], 1)
        return q, b

    def _split(self, z: torch.Tensor, x_int: torch.Tensor) -> RelaxedSolution:
        x_c, slack = z[:, : self.n_c], z[:, self.n_c:]
        x = torch.cat([x_c, x_int.to(z.dtype)], 1)[:, self.order]
        return RelaxedSolution(x_cont=x_c, slack=slack, x=x)

    # -- solving ------------------------------------------------------------------------------------------
    def forward(self, theta: torch.Tensor, x_int: torch.Tensor, keys: np.ndarray | None = None) -> RelaxedSolution:
        """Solve the batch; ``x_cont`` and ``slack`` are differentiable in ``x_int`` (implicit KKT gradients of the
        active set the solvers found; rows where that set is degenerate get the solver's answer without gradient).

        ``keys`` (B,) ints, optional: instance identifiers (training indices). OSQP starts each keyed row from
        the answer it found for the same key last time, which saves most of its iterations when the integers
        change little between epochs; answers are the same either way.
        """
        q, b = self.qp_data(theta, x_int)
        z0, active, _, _ = self._active_sets(q.detach().numpy(), b.detach().numpy(), keys)
        z = self.qp_guess(q, b, torch.from_numpy(active))
        failed = ~torch.isfinite(z).all(1)
        if bool(failed.any()):
            # the guess is wrong or degenerate for these rows (rare): the solver's answer, without gradient
            log.debug("relaxed QP: %d of %d rows carry no gradient", int(failed.sum()), failed.numel())
            z = torch.where(failed[:, None], torch.from_numpy(np.nan_to_num(z0)), z)
        return self._split(z, x_int)

    def solve_exact(self, theta: np.ndarray | torch.Tensor, x_int: np.ndarray | torch.Tensor,
                    relax_infeasible: bool = True) -> RelaxedSolution:
        """Solve without autograd. Answers that passed a KKT check are kept (quadprog's on the QP without slacks,
        else OSQP's polished ones); for the other rows :class:`BatchedQP` solves the KKT system of the solver's
        active set, and where that set is degenerate HiGHS's answer is kept (BatchedQP's interior point when
        there is none).

        ``relax_infeasible=False``: rows whose integers quadprog finds to admit no feasible continuous part
        are not solved relaxed; they come back with NaN ``x_cont`` and infinite ``slack`` (a cheap screen for
        candidate integers that only need to be told apart as feasible or not).
        """
        with torch.no_grad():
            theta = torch.as_tensor(np.asarray(theta, dtype=np.float64))
            x_int = torch.as_tensor(np.asarray(x_int, dtype=np.float64))
            q, b = self.qp_data(theta, x_int)
            qn, bn = q.numpy(), b.numpy()
            z, active, ok, skipped = self._active_sets(qn, bn, relax_infeasible=relax_infeasible)
            bad = np.flatnonzero(~ok & ~skipped)
            if bad.size:                          # polish the solver's active set exactly
                zb = self.qp_guess(q[bad], b[bad], torch.from_numpy(active[bad])).numpy()
                fixed = np.isfinite(zb).all(1)
                z[bad[fixed]] = zb[fixed]
                # a degenerate active set: HiGHS's answer (accurate to its 1e-7 tolerances) if it has one,
                # else BatchedQP's interior point
                rest = bad[~fixed & ~np.isfinite(z[bad]).all(1)]
                if rest.size:
                    log.debug("relaxed QP: %d of %d rows re-solved by BatchedQP", rest.size, ok.size)
                    z[rest] = self.qp(q[rest], b[rest]).numpy()
            z[skipped, self.n_c:] = np.inf
            return self._split(torch.from_numpy(z), x_int)

    @property
    def oracle(self) -> OSQPOracle:
        if self._oracle is None:
            self._oracle = OSQPOracle(self._H, self._F)
        return self._oracle

    @property
    def hard_oracle(self) -> HardQPOracle:
        if getattr(self, "_hard", None) is None:
            self._hard = HardQPOracle(self)
        return self._hard

    def _active_sets(self, q: np.ndarray, b: np.ndarray, keys: np.ndarray | None = None,
                     relax_infeasible: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(z, active, ok, skipped)`` per row, ``ok`` where ``z`` passed a KKT check: the QP without slacks by
        quadprog first (most rows: their integers admit a feasible continuous part), the relaxed QP (OSQP, then
        HiGHS) for the other rows. With ``relax_infeasible=False`` the rows quadprog calls infeasible are
        ``skipped`` (NaN, not ok) instead of solved relaxed."""
        z, active, ok, claimed = self.hard_oracle.solve(q, b)
        skipped = claimed if not relax_infeasible else np.zeros_like(claimed)
        rest = np.flatnonzero(~ok & ~skipped)
        if rest.size:
            z[rest], active[rest], ok[rest] = self.oracle.solve(q[rest], b[rest], None if keys is None else keys[rest])
            ok[rest] &= kkt_ok(self._H, self._F, q[rest], b[rest], z[rest], self.qp.settings.tol)
        return z, active, ok, skipped


#: OSQP adapts its step size ``rho`` every ``adaptive_rho_interval`` iterations; the default interval (0) is
#: chosen from measured setup and iteration *times*, and the adapted ``rho`` carries over to the next solve.
#: A fixed interval and a reset before every solve make each answer depend on its own row only.
_DETERMINISTIC = {"adaptive_rho_interval": 25, "rho": 0.1}


def _restart(model, x0: np.ndarray, y0: np.ndarray) -> None:
    """Start the next OSQP solve from ``(x0, y0)`` with the initial ``rho`` (not the last solve's state)."""
    model.update_settings(rho=_DETERMINISTIC["rho"])
    model.warm_start(x=x0, y=y0)


def primal_check(F: np.ndarray, q: np.ndarray, b: np.ndarray, z: np.ndarray, tol: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(feasible, slack, scale)`` per row: primal feasibility of ``F z <= b`` row by row, relative to each row's
    own bound (scoring counts 1e-6 violations), the slacks ``b - F z``, and the scale ``1 + max(|q|, |b|)`` the
    dual conditions are checked against."""
    scale = 1.0 + np.maximum(np.abs(q).max(1), np.abs(b).max(1))
    with np.errstate(invalid="ignore"):
        slack = b - z @ F.T
        feasible = np.isfinite(z).all(1) & np.all(slack >= -tol * (1.0 + np.abs(b)), axis=1)
    return feasible, slack, scale


def kkt_ok(H: np.ndarray, F: np.ndarray, q: np.ndarray, b: np.ndarray, z: np.ndarray, tol: float) -> np.ndarray:
    """Rows where ``z`` is primal feasible and some nonnegative multipliers on its tight rows make it stationary
    (non-negative least squares would be exact; the multipliers of the tight rows by least squares, checked for
    sign, are enough for the nondegenerate rows OSQP's polish returns)."""
    ok, slack, scale = primal_check(F, q, b, z, tol)
    grad = z @ H + q
    for i in np.flatnonzero(ok):
        tight = slack[i] <= tol * scale[i]
        if not tight.any():
            ok[i] = np.abs(grad[i]).max() <= tol * scale[i]
            continue
        Ft = F[tight]
        lam, *_ = np.linalg.lstsq(Ft.T, -grad[i], rcond=None)
        ok[i] = lam.min() >= -tol * scale[i] and np.abs(grad[i] + lam @ Ft).max() <= tol * scale[i]
    return ok


class HardQPOracle:
    """The layer's QP *without* slacks (``s = 0``), ``min 1/2 x'Px + q'x s.t. A x <= r, lb <= x <= ub``, by the
    dual active-set method of Goldfarb and Idnani (``quadprog``; ``P`` is factorised once).

    Where the solution's multipliers add up to at most ``rho`` on every step's merged rows, ``[x; 0]`` solves the
    relaxed QP (the slack penalty is exact there). :meth:`solve` builds the relaxed QP's multipliers from the hard
    QP's (a slack row's is ``rho`` minus the step's row multipliers) and accepts a row only where all KKT
    conditions of the relaxed QP hold to ``tol`` (scaled as :func:`kkt_ok`), so an accepted row needs no other
    check. A row whose integers admit no feasible continuous part is reported in ``infeasible`` (quadprog's
    "constraints are inconsistent"); it is a claim of the solver, not a certificate, and the layer still solves
    the relaxed QP for it unless asked not to.
    """

    def __init__(self, layer: RelaxedMIQPLayer) -> None:
        from scipy.linalg import solve_triangular

        self.n_c, self.m, self.n_s = layer.n_c, layer.n_rows, layer.n_s
        self.p = layer._F.shape[0]
        self.rho = layer.rho
        self.tol = layer.qp.settings.tol
        self.H, self.F = layer._H, layer._F
        self.E = (layer._F[: self.m, self.n_c:] < 0).astype(float)      # (m, n_s): the slack of each merged row
        rows = np.vstack([layer._F[: self.m, : self.n_c], layer._F[self.m + self.n_s:, : self.n_c]])
        self.C = np.ascontiguousarray(-rows.T)                              # quadprog: C'x >= b
        self.bounds_b = layer._bounds_b
        R = np.linalg.cholesky(layer._H[: self.n_c, : self.n_c]).T          # P = R'R
        self.R_inv = solve_triangular(R, np.eye(self.n_c))

    def solve(self, q: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(z, active, found, infeasible)`` per row of the relaxed QP's ``q`` (B, n) and ``b`` (B, p)."""
        import quadprog

        B = q.shape[0]
        m, n_c, n_s = self.m, self.n_c, self.n_s
        x = np.full((B, n_c), np.nan)
        lam = np.zeros((B, self.C.shape[1]))
        solved = np.zeros(B, dtype=bool)
        infeasible = np.zeros(B, dtype=bool)
        for i in range(B):
            upper = np.concatenate([b[i, :m], self.bounds_b])
            try:
                sol = quadprog.solve_qp(self.R_inv, -q[i, :n_c], self.C, -upper, 0, True)
            except ValueError as exc:                       # inconsistent constraints, or a numerical failure
                infeasible[i] = "inconsistent" in str(exc)
                continue
            x[i], lam[i] = sol[0], sol[4]
            solved[i] = True
        z = np.concatenate([x, np.zeros((B, n_s))], 1)
        lam_s = self.rho - lam[:, :m] @ self.E                            # stationarity in s at s = 0
        full = np.concatenate([lam[:, :m], lam_s, lam[:, m:]], 1)           # multipliers of the rows of F
        feasible, slack, scale = primal_check(self.F, q, b, z, self.tol)
        tol = self.tol * scale
        with np.errstate(invalid="ignore"):
            stationarity = np.abs(z @ self.H + q + full @ self.F).max(1)
            found = (solved & feasible & (stationarity <= tol) & (full.min(1) >= -tol)
                     & (np.abs(full * slack).max(1) <= tol))
        active = (full > 0) & found[:, None]
        active[:, m: m + n_s] = found[:, None]              # s >= 0 holds with equality
        z[~found] = np.nan
        return z, active, found, infeasible & ~solved


class OSQPOracle:
    """Per-row solves of ``min 1/2 z'Hz + q'z s.t. Fz <= b`` that return the solutions, their active sets and
    whether OSQP's polish succeeded: OSQP first (one factorisation, ``q`` and ``b`` updated per row, at most
    ``max_iter`` iterations, polishing on), HiGHS's active-set QP solver for the rows OSQP does not finish
    and polish (mostly rows whose slacks are positive)."""

    def __init__(self, H: np.ndarray, F: np.ndarray, eps: float = 1e-4, max_iter: int = 1000) -> None:
        try:
            import osqp
        except ImportError as exc:  # pragma: no cover - osqp comes with the torch extra
            raise UsageError("the relaxed MIQP layer needs osqp (pip install osqp)") from exc
        import scipy.sparse as sp

        self.H, self.F, self.n, self.p = H, F, H.shape[0], F.shape[0]
        #: Seconds HiGHS may spend on one fallback solve.
        self.highs_time_limit = 2.0
        #: key -> (x, y) of the last answer for that key (warm starts).
        self.memory: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.model = osqp.OSQP()
        self.model.setup(sp.csc_matrix(np.triu(H)), np.zeros(self.n), sp.csc_matrix(F), np.full(self.p, -np.inf),
                         np.zeros(self.p), verbose=False, eps_abs=eps, eps_rel=eps, polishing=True,
                         max_iter=max_iter, warm_starting=True, scaling=0, **_DETERMINISTIC)

    def solve(self, q: np.ndarray, b: np.ndarray, keys: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(z, active, polished)`` for every row of ``q`` (B, n) and ``b`` (B, p); rows with a ``key`` seen
        before start from that key's last primal-dual pair."""
        with _stdout_silenced():
            return self._solve(q, b, keys)

    def _solve(self, q: np.ndarray, b: np.ndarray, keys: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B = q.shape[0]
        z = np.full((B, self.n), np.nan)
        active = np.zeros((B, self.p), dtype=bool)
        polished = np.zeros(B, dtype=bool)
        lower = np.full(self.p, -np.inf)
        for i in range(B):
            key = None if keys is None else int(keys[i])
            self.model.update(q=q[i], l=lower, u=b[i])
            if key is not None and key in self.memory:
                self.model.warm_start(x=self.memory[key][0], y=self.memory[key][1])
            else:                                   # not the previous row's answer: order-independent
                _restart(self.model, np.zeros(self.n), np.zeros(self.p))
            res = self.model.solve(raise_error=False)
            if res.info.status_val == 1 and res.info.status_polish == 1:      # solved and polished
                z[i] = res.x
                active[i] = res.y > 0
                polished[i] = True
                if key is not None:
                    self.memory[key] = (res.x.copy(), res.y.copy())
            else:                                   # slow or failed polish: HiGHS's active-set QP
                z[i], active[i] = self._highs(q[i], b[i])
                if not np.all(np.isfinite(z[i])) and res.x is not None and np.all(np.isfinite(res.x)):
                    z[i] = res.x                    # HiGHS failed too: OSQP's last iterate (approximate)
        return z, active, polished

    def _highs(self, q: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from bilevelbench.qp import INF, solve_convex_qp

        res = solve_convex_qp(self.H, q, self.F, np.full(self.p, -INF), b, time_limit=self.highs_time_limit)
        if res.status != "optimal":
            return np.full(self.n, np.nan), np.zeros(self.p, dtype=bool)
        return res.x, res.row_dual > 1e-12
