"""The problem: ``max_y v . y`` subject to ``W y <= capacity``, ``y in {0, 1}^n``.

The structure (fixed per data set) is the integer weight matrix ``W`` (m, n), every entry ``>= 1``, and the values
``v`` (n,), every entry ``> 0``; an instance's parameter is its capacity vector (m,). The items are stored sorted
by decreasing value density ``v_j / sum_i (W_ij / sum_k W_ik)``, so index order is a sensible greedy order.

Because ``W`` is integer and ``y`` binary, ``W y`` is an exact integer: ``W y <= c`` holds exactly when
``W y <= floor(c)``. The solvers are given ``floor(c)`` (:func:`integer_capacity`), which removes every feasibility
tolerance from the labels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from bilevelbench.errors import SchemaError, UsageError

FAMILY = "knapsack"
KEYS = ("weight", "value")
#: An answer entry within this distance of 0 or 1 counts as that integer; any other entry makes it infeasible.
BINARY_TOL = 1e-6
#: The dynamic programme of the single-constraint check runs when ``n * (floor(c) + 1)`` is at most this.
DP_MAX_CELLS = 10_000_000
#: Default sampling settings (the family's options).
DEFAULT_CAPACITY_RATIO = (0.2, 0.6)
DEFAULT_WEIGHT_MAX = 100
#: Width of the uniform noise added to each item's mean weight to make its value.
VALUE_NOISE = 10.0


@dataclass(frozen=True)
class KnapsackStructure:
    """Data every instance shares.

    Attributes
    ----------
    weight : (m, n) int64 array
        Item weights, every entry ``>= 1``.
    value : (n,) float array
        Item values, every entry ``> 0``.
    """

    weight: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.weight)
        v = np.asarray(self.value, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise SchemaError(f"knapsack weight must be a non-empty (m, n) matrix, got shape {w.shape}")
        if not (np.all(np.isfinite(w)) and np.all(w == np.round(w)) and np.all(w >= 1)):
            raise SchemaError("knapsack weights must be integers >= 1")
        if v.shape != (w.shape[1],) or not (np.all(np.isfinite(v)) and np.all(v > 0)):
            raise SchemaError(f"knapsack values must be {w.shape[1]} positive finite numbers, got shape {v.shape}")
        object.__setattr__(self, "weight", np.asarray(np.round(w), dtype=np.int64))
        object.__setattr__(self, "value", v)

    @property
    def n_items(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_constraints(self) -> int:
        return int(self.weight.shape[0])

    @property
    def size(self) -> str:
        """``<items>x<constraints>`` (``20x2``)."""
        return f"{self.n_items}x{self.n_constraints}"

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored under ``/structure``."""
        return {"weight": self.weight.copy(), "value": self.value.copy()}

    def digest(self) -> str:
        """SHA-256 over the weights (int64) and values (float64), with their shapes."""
        h = hashlib.sha256(FAMILY.encode())
        for key, dtype in (("weight", "<i8"), ("value", "<f8")):
            value = np.ascontiguousarray(getattr(self, key), dtype=dtype)
            h.update(key.encode())
            h.update(str(value.shape).encode())
            h.update(value.tobytes())
        return h.hexdigest()


def density_order(weight: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Item indices by decreasing ``v_j / sum_i (W_ij / sum_k W_ik)`` (ties keep their index order)."""
    w = np.asarray(weight, dtype=np.float64)
    normalised = (w / w.sum(axis=1, keepdims=True)).sum(axis=0)
    return np.argsort(-(np.asarray(value, dtype=np.float64) / normalised), kind="stable")


def sample_structure(rng: np.random.Generator, items: int, constraints: int,
                     weight_max: int = DEFAULT_WEIGHT_MAX) -> KnapsackStructure:
    """Draw ``W_ij ~ U{1..weight_max}`` and ``v_j = mean_i W_ij + U(0, 10)`` (2 decimals), sorted by density.

    Values weakly correlated with the weights make the classical harder kind of instance (uncorrelated ones are
    easy for greedy rules and branch-and-bound alike).

    Raises
    ------
    UsageError
        If a size is below 1.
    """
    if items < 1 or constraints < 1 or weight_max < 1:
        raise UsageError(f"knapsack needs --items >= 1, --constraints >= 1 and --weight-max >= 1; got "
                         f"{items}, {constraints} and {weight_max}")
    weight = rng.integers(1, weight_max, size=(constraints, items), endpoint=True).astype(np.int64)
    value = np.round(weight.mean(axis=0) + rng.uniform(0.0, VALUE_NOISE, size=items), 2)
    order = density_order(weight, value)
    return KnapsackStructure(weight=weight[:, order], value=value[order])


def check_ratio(ratio: tuple[float, float]) -> tuple[float, float]:
    """``(LO, HI)`` as floats with ``0 <= LO <= HI <= 1``; raises UsageError otherwise."""
    lo, hi = (float(r) for r in ratio)
    if not (0.0 <= lo <= hi <= 1.0):
        raise UsageError(f"--capacity-ratio must be LO,HI with 0 <= LO <= HI <= 1, got {lo},{hi}")
    return lo, hi


def sample_capacities(s: KnapsackStructure, rng: np.random.Generator, n: int,
                      ratio: tuple[float, float] = DEFAULT_CAPACITY_RATIO) -> np.ndarray:
    """``capacity_i = U[LO, HI] * sum_j W_ij``, drawn per instance and constraint: (n, m)."""
    lo, hi = check_ratio(ratio)
    return rng.uniform(lo, hi, size=(n, s.n_constraints)) * s.weight.sum(axis=1).astype(np.float64)


def integer_capacity(capacity: np.ndarray) -> np.ndarray:
    """``floor(capacity)`` as int64: ``W y <= c`` and ``W y <= floor(c)`` hold for the same binary ``y``.

    Raises
    ------
    UsageError
        If a capacity is not finite.
    """
    c = np.asarray(capacity, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise UsageError("knapsack capacities must be finite")
    return np.floor(c).astype(np.int64)


def objective(s: KnapsackStructure, y: np.ndarray) -> np.ndarray:
    """``v . y`` per row of ``y`` (B, n)."""
    return np.atleast_2d(np.asarray(y, dtype=np.float64)) @ s.value


def capacity_excess(s: KnapsackStructure, y: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """``sum_i max(0, W_i y - c_i)`` per row (B,)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    load = y @ s.weight.T.astype(np.float64)
    return np.maximum(load - np.atleast_2d(capacity), 0.0).sum(axis=1)


def non_binary_count(y: np.ndarray, tol: float = BINARY_TOL) -> np.ndarray:
    """How many entries of each row are not within ``tol`` of 0 or 1 (B,)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    return np.sum(np.minimum(np.abs(y), np.abs(y - 1.0)) > tol, axis=1)


def dp_optimum(weight: np.ndarray, value: np.ndarray, capacity: int) -> float:
    """The single-constraint optimum by dynamic programming over the integer capacities ``0..capacity``.

    Parameters
    ----------
    weight : (n,) array of positive integers
    value : (n,) array
    capacity : int
        ``>= 0``.

    Returns
    -------
    float
        ``max v . y`` over binary ``y`` with ``weight . y <= capacity``.
    """
    w = np.asarray(weight)
    if w.ndim != 1 or np.any(w != np.round(w)) or np.any(w < 1):
        raise UsageError("the dynamic programme needs one row of positive integer weights")
    if capacity < 0:
        raise UsageError(f"the dynamic programme needs a capacity >= 0, got {capacity}")
    best = np.zeros(int(capacity) + 1)
    for wj, vj in zip(w.astype(np.int64), np.asarray(value, dtype=np.float64)):
        if wj <= capacity:
            best[wj:] = np.maximum(best[wj:], best[:-wj] + vj)     # right side read before writing: 0/1
    return float(best[-1])
