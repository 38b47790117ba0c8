"""What a family tells the verifier: the parametric problem, how an answer is priced, and the input domain.

A family supports worst-case verification by implementing ``Family.verification_problem(ds)`` and returning a
:class:`VerificationProblem`. Everything in it is plain arrays, so the verifier stays family-independent:

* :class:`ParametricProgram`: the family's optimisation problem as a (mixed-integer) linear program whose
  right-hand sides move with the parameter vector ``x``::

      opt  c . y + c0   s.t.  row_lower + B x <= A y <= row_upper + B x,   y_lower <= y <= y_upper,
                              y_j integer where ``integer[j]``

  Its optimal value is ``Phi(x)``.
* :class:`AnswerObjective`: the objective a submitted decision ``yhat`` earns at ``x``, priced exactly as the
  evaluator prices it: ``F(x, yhat) = c . yhat + c0 + sum_k price_k max(0, G_k yhat + H_k x + h_k)``
  (soft-constraint penalties are the ``max`` terms).
* the gap ``F(x, proxy(x)) - Phi(x)`` for a minimisation, ``Phi(x) - F(x, proxy(x))`` for a maximisation:
  never negative when the proxy's answer is feasible; its worst case over the domain is what is verified.
* two independent callables for the witness re-check: the family's own objective of an answer, and an exact
  re-solve of the instance (a different code path from the program above).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import InfeasibleDomainError, UsageError

#: ``domain`` values of ``verify-proxy``.
DOMAINS = ("box", "data")


def _as_csr(a, shape: tuple[int, int], name: str) -> sp.csr_matrix:
    m = sp.csr_matrix(a, dtype=np.float64)
    if m.shape != shape:
        raise UsageError(f"verification problem: {name} has shape {m.shape}, expected {shape}")
    if m.nnz and not np.all(np.isfinite(m.data)):
        raise UsageError(f"verification problem: {name} must be finite")
    return m


@dataclass
class ParametricProgram:
    """``opt c . y + c0`` over ``row_lower + B x <= A y <= row_upper + B x`` and the bounds (see the module)."""

    sense: str
    c: np.ndarray
    c0: float
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    B: sp.csr_matrix
    y_lower: np.ndarray
    y_upper: np.ndarray
    integer: np.ndarray
    names: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sense not in ("min", "max"):
            raise UsageError(f"verification problem: sense must be 'min' or 'max', received {self.sense!r}")
        self.c = np.asarray(self.c, np.float64)
        ny = self.c.size
        self.A = _as_csr(self.A, (self.A.shape[0], ny), "A")
        nr = self.A.shape[0]
        self.B = sp.csr_matrix(self.B, dtype=np.float64)
        if self.B.shape[0] != nr:
            raise UsageError(f"verification problem: B has {self.B.shape[0]} rows, A has {nr}")
        self.row_lower = np.asarray(self.row_lower, np.float64).reshape(nr)
        self.row_upper = np.asarray(self.row_upper, np.float64).reshape(nr)
        self.y_lower = np.asarray(self.y_lower, np.float64).reshape(ny)
        self.y_upper = np.asarray(self.y_upper, np.float64).reshape(ny)
        self.integer = np.asarray(self.integer, bool).reshape(ny)
        self.c0 = float(self.c0)

    @property
    def n_y(self) -> int:
        return self.c.size

    @property
    def n_x(self) -> int:
        return self.B.shape[1]

    @property
    def is_lp(self) -> bool:
        return not bool(self.integer.any())


@dataclass
class AnswerObjective:
    """``F(x, yhat) = c . yhat + c0 + sum_k price_k max(0, G_k yhat + H_k x + h_k)``."""

    c: np.ndarray
    c0: float
    G: sp.csr_matrix
    H: sp.csr_matrix
    h: np.ndarray
    price: np.ndarray

    def __post_init__(self) -> None:
        self.c = np.asarray(self.c, np.float64)
        self.h = np.asarray(self.h, np.float64).reshape(-1)
        k = self.h.size
        self.G = _as_csr(self.G, (k, self.c.size), "G")
        self.H = sp.csr_matrix(self.H, dtype=np.float64)
        self.price = np.asarray(self.price, np.float64).reshape(k)
        if np.any(self.price < 0):
            raise UsageError("verification problem: penalty prices must be non-negative")
        self.c0 = float(self.c0)

    def __call__(self, x: np.ndarray, yhat: np.ndarray) -> np.ndarray:
        """``F`` for a batch: ``x`` (B, nx), ``yhat`` (B, n) -> (B,)."""
        x, yhat = np.atleast_2d(x), np.atleast_2d(yhat)
        value = yhat @ self.c + self.c0
        if self.h.size:
            pre = (self.G @ yhat.T).T + (self.H @ x.T).T + self.h
            value = value + np.maximum(pre, 0.0) @ self.price
        return value


@dataclass
class VerificationProblem:
    """Everything the verifier needs from a family (see the module docstring).

    Attributes
    ----------
    param, decision : str
        The parameter the proxy reads and the decision it answers (must match the proxy graph).
    program : ParametricProgram
    answer : AnswerObjective
    decision_columns : (n,) int array
        Columns of the program's ``y`` that a decision occupies (``pg`` inside ``(pg, xi)``).
    nominal : (nx,) array
        The family's nominal parameter vector (the centre of the ``box`` domain).
    train_params : (N, nx) array
        Parameters of the train split (for the ``data`` domain and the attack's starting points).
    units : str
        Units of the objective (``$/h``).
    answer_value : callable
        ``(x (B, nx), yhat (B, n)) -> (B,)``: the family's own objective of an answer (the evaluator's code).
    exact_optimum : callable
        ``(x (B, nx)) -> (B,)``: ``Phi`` by the family's exact solver (NaN where it has no optimum).
    fixed : (nx,) bool array
        Parameters the domain never moves (a bus without load).
    answer_feasible : callable, optional
        ``(x, yhat) -> (B,) bool``: whether an answer is feasible as the evaluator judges it (the re-check
        reports an infeasible witness answer).
    notes : list of str
        Family-specific remarks copied into the record.
    """

    param: str
    decision: str
    program: ParametricProgram
    answer: AnswerObjective
    decision_columns: np.ndarray
    nominal: np.ndarray
    train_params: np.ndarray
    units: str
    answer_value: Callable[[np.ndarray, np.ndarray], np.ndarray]
    exact_optimum: Callable[[np.ndarray], np.ndarray]
    fixed: np.ndarray | None = None
    answer_feasible: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    notes: list = field(default_factory=list)

    @property
    def sense(self) -> str:
        return self.program.sense

    def gap(self, proxy_value: np.ndarray, optimum: np.ndarray) -> np.ndarray:
        """The optimality gap in the objective's units (``>= 0`` for a feasible answer)."""
        diff = np.asarray(proxy_value, float) - np.asarray(optimum, float)
        return diff if self.sense == "min" else -diff

    def domain(self, kind: str = "box", delta: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
        """The input box: ``nominal (1 +- delta)`` (``box``) or the train split's bounding box (``data``).

        Raises
        ------
        UsageError
            On an unknown kind, a negative or non-finite ``delta``, or an empty train split for ``data``.
        """
        nominal = np.asarray(self.nominal, np.float64)
        if kind == "box":
            if not (np.isfinite(delta) and delta >= 0):
                raise UsageError(f"--delta must be a finite number >= 0, received {delta}")
            a, b = nominal * (1.0 - delta), nominal * (1.0 + delta)
            lower, upper = np.minimum(a, b), np.maximum(a, b)
        elif kind == "data":
            if self.train_params.size == 0:
                raise UsageError("--domain data needs a train split with instances; this file has none")
            lower, upper = self.train_params.min(0), self.train_params.max(0)
        else:
            raise UsageError(f"--domain must be one of {', '.join(DOMAINS)}, received {kind!r}")
        if self.fixed is not None:
            lower = np.where(self.fixed, nominal, lower)
            upper = np.where(self.fixed, nominal, upper)
        return lower, upper


def check_domain_feasible(problem: VerificationProblem, lower: np.ndarray, upper: np.ndarray) -> None:
    """Raise :class:`InfeasibleDomainError` when no ``x`` in the box has a feasible instance (an LP in ``(x, y)``
    with the integrality dropped: if even that is infeasible, so is every instance)."""
    import highspy

    from bilevelbench.verification.milp import highs_model, quiet_highs

    p = problem.program
    h = quiet_highs()
    h.passModel(highs_model(sp.hstack([p.A, -p.B]), np.zeros(p.n_y + p.n_x),
                            np.concatenate([p.y_lower, lower]), np.concatenate([p.y_upper, upper]),
                            p.row_lower, p.row_upper))
    h.run()
    if h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
        raise InfeasibleDomainError(
            f"no {problem.param} in the verification domain gives a feasible instance "
            f"({problem.param} from {lower.min():.6g} to {upper.max():.6g}): there is no worst case to compute")
