"""Small verification problems whose worst case is known in closed form (shared by the verification tests)."""

from __future__ import annotations

import numpy as np

from bilevelbench.verification.graph import Affine, ProxyGraph, ReLU
from bilevelbench.verification.problem import AnswerObjective, ParametricProgram, VerificationProblem


def follower_at_least_x(lower: float = -1.0, upper: float = 2.0) -> VerificationProblem:
    """``Phi(x) = min {y : y >= x, -10 <= y <= 10} = x`` for a scalar ``x``; an answer ``yhat`` costs ``yhat``
    plus 100 per unit it falls below ``x`` (a soft constraint priced like the dcopf overloads)."""
    program = ParametricProgram("min", c=np.array([1.0]), c0=0.0, A=np.array([[1.0]]), row_lower=np.array([0.0]),
                                row_upper=np.array([np.inf]), B=np.array([[1.0]]), y_lower=np.array([-10.0]),
                                y_upper=np.array([10.0]), integer=np.array([False]))
    answer = AnswerObjective(c=np.array([1.0]), c0=0.0, G=np.array([[-1.0]]), H=np.array([[1.0]]),
                             h=np.array([0.0]), price=np.array([100.0]))
    return VerificationProblem(
        param="x", decision="y", program=program, answer=answer, decision_columns=np.array([0]),
        nominal=np.array([0.5 * (lower + upper)]), train_params=np.array([[lower], [upper]]), units="u",
        answer_value=lambda x, y: answer(x, y),
        exact_optimum=lambda x: np.asarray(x, float)[:, 0].copy())


def absolute_value_proxy() -> ProxyGraph:
    """``yhat = |x| = relu(x) + relu(-x)``: its gap ``|x| - x`` is ``2 max(0, -x)``, largest at the lowest x."""
    return ProxyGraph("x", "y", 1, (Affine(np.array([[1.0], [-1.0]]), np.zeros(2)), ReLU(),
                                    Affine(np.array([[1.0, 1.0]]), np.zeros(1))), "|x|")


def shifted_proxy(shift: float) -> ProxyGraph:
    """``yhat = x - shift``: below the optimum by ``shift``, so every x has gap ``-shift + 100 shift = 99 shift``."""
    return ProxyGraph("x", "y", 1, (Affine(np.array([[1.0]]), np.array([-shift])),), "x - shift")


def random_proxy(n_inputs: int, widths: tuple[int, ...], seed: int) -> ProxyGraph:
    """A random ReLU network from ``n_inputs`` to one output (for problems with a scalar decision)."""
    rng = np.random.default_rng(seed)
    layers: list = []
    width = n_inputs
    for w in widths:
        layers += [Affine(rng.normal(size=(w, width)) / np.sqrt(width), rng.normal(size=w) * 0.3), ReLU()]
        width = w
    layers.append(Affine(rng.normal(size=(1, width)) / np.sqrt(width), np.zeros(1)))
    return ProxyGraph("x", "y", n_inputs, tuple(layers), f"random {widths}")


def follower_at_least_sum(n_inputs: int) -> VerificationProblem:
    """``Phi(x) = max(sum x, -10)`` clipped to [-10, 10] through ``y >= sum(x)``; answers priced as above."""
    program = ParametricProgram("min", c=np.array([1.0]), c0=0.0, A=np.array([[1.0]]), row_lower=np.array([0.0]),
                                row_upper=np.array([np.inf]), B=np.ones((1, n_inputs)), y_lower=np.array([-10.0]),
                                y_upper=np.array([10.0]), integer=np.array([False]))
    answer = AnswerObjective(c=np.array([1.0]), c0=0.0, G=np.array([[-1.0]]), H=np.ones((1, n_inputs)),
                             h=np.array([0.0]), price=np.array([100.0]))
    return VerificationProblem(
        param="x", decision="y", program=program, answer=answer, decision_columns=np.array([0]),
        nominal=np.full(n_inputs, 0.5), train_params=np.zeros((0, n_inputs)), units="u",
        answer_value=lambda x, y: answer(x, y),
        exact_optimum=lambda x: np.clip(np.asarray(x, float).sum(1), -10.0, 10.0))
