"""Parametric mixed-integer quadratic programs: one model shared by generator, baselines and evaluator.

Every mixed-integer family (``mimpc-robot``, ``mimpc-tank``) is written in one
form, with the decision ``x`` in R^n and the instance parameter ``theta`` in
R^p stacked as ``w = [x; theta]``::

    min_x   f(x; theta) = 1/2 w'Ww + c'w + c0
    s.t.    G x + K theta <= h                    (rows, each with a class)
            lb <= x <= ub,   x_i integer for i in ``integer``

Only ``x`` is decided; ``theta`` is given. The objective is the *true*
objective of the underlying MPC (the constant terms in ``theta`` included), so
objective values match the physical cost and the gap is measured on it.

Row classes name what a constraint means (``state``, ``obstacle``, ``ramp``,
...). A class made only of integer variables is *integer-only*: the paper's
"integer constraint violation" counts those; the other classes are the
"continuous constraint violation".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from bilevelbench.errors import SolverError, UsageError
from bilevelbench.qp import INF, solve_convex_qp

#: Arrays that define a structure, in the order they are hashed and stored.
STRUCTURE_KEYS = ("W", "c", "c0", "G", "K", "h", "lb", "ub", "integer", "row_class")


@dataclass(frozen=True, eq=False)
class MIQPStructure:
    """Data shared by every instance of a parametric MIQP family (see the module docstring).

    ``row_class`` holds one integer per row indexing ``class_names``; ``extra``
    keeps the family's physical constants (dynamics, bounds, obstacles) that
    closed-loop simulation needs; they are stored beside the arrays and hashed.
    """

    W: np.ndarray
    c: np.ndarray
    c0: float
    G: np.ndarray
    K: np.ndarray
    h: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    row_class: np.ndarray
    class_names: tuple[str, ...]
    decision_names: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in STRUCTURE_KEYS:
            value = getattr(self, key)
            if key == "c0":
                value = float(np.asarray(value, dtype=float).reshape(()))
            elif key == "integer":
                value = np.ascontiguousarray(np.asarray(value, dtype=bool))
            elif key == "row_class":
                value = np.ascontiguousarray(np.asarray(value, dtype=np.int64))
            else:
                value = np.ascontiguousarray(np.asarray(value, dtype=np.float64))
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, key, value)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "decision_names", tuple(str(c) for c in self.decision_names))
        self._validate()

    def _validate(self) -> None:
        n, r = self.lb.shape[0], self.h.shape[0]
        p = self.W.shape[0] - n
        expected = {"W": (n + p, n + p), "c": (n + p,), "G": (r, n), "K": (r, p), "ub": (n,), "integer": (n,),
                    "row_class": (r,)}
        for key, shape in expected.items():
            got = getattr(self, key).shape
            if got != shape:
                raise UsageError(f"MIQP structure array {key!r} must have shape {shape}, got {got}")
        for key in ("W", "c", "G", "K", "h"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise UsageError(f"MIQP structure array {key!r} contains NaN or inf")
        if np.any(self.lb > self.ub):
            raise UsageError("MIQP structure has a variable with lb > ub")
        if r and (self.row_class.min() < 0 or self.row_class.max() >= len(self.class_names)):
            raise UsageError(f"row_class must index class_names (0..{len(self.class_names) - 1})")
        if not np.allclose(self.W, self.W.T, atol=1e-12 * max(1.0, float(np.abs(self.W).max()))):
            raise UsageError("MIQP objective matrix W must be symmetric")

    # -- sizes ----------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of decision variables."""
        return int(self.lb.shape[0])

    @property
    def p(self) -> int:
        """Number of instance parameters."""
        return int(self.W.shape[0] - self.n)

    @property
    def n_integer(self) -> int:
        return int(self.integer.sum())

    @property
    def size(self) -> str:
        return f"{self.n - self.n_integer}c+{self.n_integer}i"

    @property
    def integer_only_classes(self) -> tuple[str, ...]:
        """Classes whose rows involve integer variables only."""
        out = []
        for k, name in enumerate(self.class_names):
            rows = self.G[self.row_class == k]
            if rows.size and not np.any(rows[:, ~self.integer]):
                out.append(name)
        return tuple(out)

    @property
    def Wxx(self) -> np.ndarray:
        return self.W[: self.n, : self.n]

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(getattr(self, key)) for key in STRUCTURE_KEYS}

    def digest(self) -> str:
        """SHA-256 of arrays, class names and physical constants."""
        sha = hashlib.sha256()
        for key, value in self.arrays().items():
            sha.update(key.encode())
            sha.update(repr(value.shape).encode())
            sha.update(np.ascontiguousarray(value, dtype="<f8").tobytes())
        sha.update(repr(self.class_names).encode())
        sha.update(repr(self.decision_names).encode())
        for key in sorted(self.extra):
            sha.update(key.encode())
            sha.update(np.ascontiguousarray(np.asarray(self.extra[key], dtype="<f8")).tobytes())
        return sha.hexdigest()

    # -- instance data ---------------------------------------------------------------
    def linear_term(self, theta: np.ndarray) -> np.ndarray:
        """``c_x + W_x,theta theta``: the linear objective of ``x`` at ``theta``, rows per instance."""
        theta = np.atleast_2d(np.asarray(theta, float))
        n = self.n
        return self.c[:n] + theta @ self.W[n:, :n]

    def constant_term(self, theta: np.ndarray) -> np.ndarray:
        """The objective's part that depends on ``theta`` only, per instance."""
        theta = np.atleast_2d(np.asarray(theta, float))
        n = self.n
        Wtt = self.W[n:, n:]
        return 0.5 * np.einsum("bi,ij,bj->b", theta, Wtt, theta) + theta @ self.c[n:] + self.c0

    def rhs(self, theta: np.ndarray) -> np.ndarray:
        """``h - K theta`` (rows per instance): the constraints are ``G x <= rhs``."""
        theta = np.atleast_2d(np.asarray(theta, float))
        return self.h - theta @ self.K.T


def objective(s: MIQPStructure, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``f(x; theta)`` per row."""
    x, theta = np.atleast_2d(np.asarray(x, float)), np.atleast_2d(np.asarray(theta, float))
    quad = 0.5 * np.einsum("bi,ij,bj->b", x, s.Wxx, x)
    return quad + np.sum(x * s.linear_term(theta), 1) + s.constant_term(theta)


def row_residual(s: MIQPStructure, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``G x + K theta - h`` (feasible where <= 0), shape (batch, rows)."""
    x = np.atleast_2d(np.asarray(x, float))
    return x @ s.G.T - s.rhs(theta)


def bound_residual(s: MIQPStructure, x: np.ndarray) -> np.ndarray:
    """``max(lb - x, x - ub)`` per variable (feasible where <= 0), shape (batch, n)."""
    x = np.atleast_2d(np.asarray(x, float))
    with np.errstate(invalid="ignore"):
        return np.maximum(s.lb - x, x - s.ub)


def row_scale(s: MIQPStructure) -> np.ndarray:
    """Per-row scale ``max(1, ||G_i||_inf)``: residuals divided by it are comparable across rows."""
    return np.maximum(1.0, np.abs(s.G).max(axis=1)) if s.G.shape[0] else np.ones(0)


@dataclass(frozen=True)
class ContinuousSolution:
    """The continuous part re-solved with the integers fixed."""

    status: str
    x: np.ndarray
    objective: float


def solve_fixed_integers(s: MIQPStructure, theta: np.ndarray, x_int: np.ndarray,
                         time_limit: float = 60.0) -> ContinuousSolution:
    """Fix the integer variables at ``x_int`` (rounded) and solve the convex QP in the rest with HiGHS.

    Returns the full decision (integers included) and its objective ``f``; status
    ``infeasible`` when no continuous completion exists.
    """
    theta = np.asarray(theta, float).reshape(s.p)
    ints = np.round(np.asarray(x_int, float).reshape(s.n_integer))
    cont = ~s.integer
    if np.any(ints < s.lb[s.integer] - 1e-9) or np.any(ints > s.ub[s.integer] + 1e-9):
        return ContinuousSolution("infeasible", np.full(s.n, np.nan), float("nan"))
    lin = s.linear_term(theta)[0]
    Wxx = s.Wxx
    P = Wxx[np.ix_(cont, cont)]
    q = lin[cont] + Wxx[np.ix_(cont, s.integer)] @ ints
    offset = float(0.5 * ints @ Wxx[np.ix_(s.integer, s.integer)] @ ints + lin[s.integer] @ ints
                   + s.constant_term(theta)[0])
    rhs = s.rhs(theta)[0] - s.G[:, s.integer] @ ints
    A = s.G[:, cont]
    # Rows that involve no continuous variable are checked here, not passed to HiGHS.
    empty = ~np.any(A != 0, axis=1)
    if np.any(rhs[empty] < -1e-9 * np.maximum(1.0, np.abs(s.h[empty]))):
        return ContinuousSolution("infeasible", np.full(s.n, np.nan), float("nan"))
    res = solve_convex_qp(P, q, A[~empty], np.full(int((~empty).sum()), -INF), rhs[~empty], s.lb[cont], s.ub[cont],
                          offset=offset, time_limit=time_limit)
    x = np.full(s.n, np.nan)
    if res.status == "optimal":
        x[cont] = res.x
        x[s.integer] = ints
        return ContinuousSolution("optimal", x, float(objective(s, x, theta)[0]))
    if res.status == "infeasible":
        return ContinuousSolution("infeasible", x, float("nan"))
    raise SolverError(f"HiGHS ended the fixed-integer QP with status {res.status!r}")


def integer_feasibility(s: MIQPStructure, theta: np.ndarray, time_limit: float = 60.0) -> str:
    """Decide with HiGHS's MILP solver whether any ``x`` meets every constraint (objective ignored).

    Returns ``"feasible"``, ``"infeasible"`` or ``"unknown: <status>"``. This is the
    independent check of a label that the MIQP solver says is infeasible.
    """
    from bilevelbench.qp import solve_milp

    theta = np.asarray(theta, float).reshape(s.p)
    res = solve_milp(np.zeros(s.n), s.G, np.full(s.G.shape[0], -INF), s.rhs(theta)[0], s.lb, s.ub, s.integer,
                     time_limit=time_limit)
    if res.status == "optimal":
        return "feasible"
    if res.status == "infeasible":
        return "infeasible"
    return f"unknown: {res.status}"
