"""The problem: ``min_x 1/2 x' D x - p' x`` over the box ``lo <= x <= hi`` (``D`` diagonal and positive).

The optimum is ``clip(p / D, lo, hi)`` in closed form; the label is certified by its KKT residual, and the oracle
re-solves it with L-BFGS-B (scipy), an iterative method that never uses the closed form.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

KEYS = ("D", "lo", "hi")


@dataclass(frozen=True)
class BoxQPStructure:
    """Data every instance shares: the diagonal ``D`` and the box ``[lo, hi]``."""

    D: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def k(self) -> int:
        return int(self.D.shape[0])

    @property
    def size(self) -> str:
        return f"k{self.k}"

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.asarray(getattr(self, key), float) for key in KEYS}

    def digest(self) -> str:
        h = hashlib.sha256(b"boxqp/1\n")
        for key in KEYS:
            h.update(np.ascontiguousarray(getattr(self, key), "<f8").tobytes())
        return h.hexdigest()


def sample_structure(rng: np.random.Generator, k: int) -> BoxQPStructure:
    lo = -rng.uniform(0.5, 1.5, k)
    return BoxQPStructure(D=rng.uniform(0.5, 2.0, k), lo=lo, hi=lo + rng.uniform(1.0, 2.0, k))


def objective(s: BoxQPStructure, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    x, p = np.atleast_2d(x), np.atleast_2d(p)
    return 0.5 * np.sum(s.D * x * x, axis=1) - np.sum(p * x, axis=1)


def solve(s: BoxQPStructure, p: np.ndarray) -> np.ndarray:
    return np.clip(np.atleast_2d(p) / s.D, s.lo, s.hi)


def kkt_residual(s: BoxQPStructure, x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The projected-gradient residual ``||x - clip(x - grad, lo, hi)||_inf`` (0 exactly at the optimum)."""
    x, p = np.atleast_2d(x), np.atleast_2d(p)
    grad = s.D * x - p
    return np.max(np.abs(x - np.clip(x - grad, s.lo, s.hi)), axis=1)


def box_violation(s: BoxQPStructure, x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(x)
    return np.max(np.maximum(0.0, np.maximum(s.lo - x, x - s.hi)), axis=1, initial=0.0)
