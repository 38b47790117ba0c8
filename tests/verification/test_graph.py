"""The exported proxy graph: layers, forward pass, JSON round trip, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bilevelbench.errors import UnsupportedLayerError, UsageError
from bilevelbench.verification.attack import torch_forward
from bilevelbench.verification.graph import (
    Affine,
    Clamp,
    GreedyRepair,
    ProxyGraph,
    ReLU,
    ShiftClip,
    Sigmoid,
    greedy_repair,
)


def projection_graph() -> ProxyGraph:
    rng = np.random.default_rng(0)
    lo, hi = np.array([0.0, 1.0, 0.0]), np.array([5.0, 4.0, 2.0])
    return ProxyGraph("d", "p", 2, (Affine(rng.normal(size=(6, 2)), rng.normal(size=6)), ReLU(),
                                    Affine(rng.normal(size=(3, 6)), np.zeros(3)), Clamp(lo, hi),
                                    ShiftClip(lo, hi, np.ones(2), 1.0)), "test")


def test_shift_clip_output_is_feasible_and_json_round_trips():
    graph = projection_graph()
    x = np.random.default_rng(1).uniform(0.5, 3.0, size=(50, 2))
    y = graph.forward(x)
    np.testing.assert_allclose(y.sum(1), x.sum(1) + 1.0, atol=1e-9)           # sum = a . x + c
    assert np.all(y >= [0.0, 1.0, 0.0]) and np.all(y <= [5.0, 4.0, 2.0])
    again = ProxyGraph.from_dict(json.loads(json.dumps(graph.to_dict())))
    np.testing.assert_array_equal(again.forward(x), y)
    np.testing.assert_allclose(torch_forward(graph, torch.tensor(x)).numpy(), y, atol=1e-9)


def test_greedy_repair_takes_wanted_items_in_order_while_they_fit():
    weight = np.array([[3.0, 2.0, 2.0, 1.0]])
    scores = np.array([[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    y = greedy_repair(scores, weight, np.array([[5.0], [4.0]]))
    # row 0: item 0 (3), item 1 unwanted, item 2 fits (5), item 3 would need 6 > 5
    # row 1: item 0 (3), item 1 needs 5 > 4, item 2 needs 5 > 4, item 3 fits exactly (4)
    np.testing.assert_array_equal(y, [[1, 0, 1, 0], [1, 0, 0, 1]])
    layer = GreedyRepair(weight, np.eye(1), np.zeros(1))
    graph = ProxyGraph("c", "y", 1, (Affine(np.ones((4, 1)), -np.array([0.0, 10.0, 0.0, 0.0])), layer))
    np.testing.assert_array_equal(graph.forward(np.array([[5.0]])), [[1, 0, 1, 0]])


def test_errors_say_what_was_expected():
    with pytest.raises(UsageError, match="affine layer takes 3 inputs, receives 2"):
        ProxyGraph("x", "y", 2, (Affine(np.ones((1, 3)), np.zeros(1)),))
    with pytest.raises(UsageError, match="lower <= upper"):
        Clamp(np.array([1.0]), np.array([0.0]))
    with pytest.raises(UsageError, match="finite"):
        Affine(np.array([[np.nan]]), np.zeros(1))
    with pytest.raises(UsageError, match="non-negative"):
        GreedyRepair(np.array([[-1.0]]), np.eye(1), np.zeros(1))
    with pytest.raises(UnsupportedLayerError, match="unknown proxy layer 'softmax'"):
        ProxyGraph.from_dict({"input": "x", "output": "y", "n_inputs": 1, "layers": [{"kind": "softmax"}]})
    graph = ProxyGraph("x", "y", 1, (Sigmoid(),))
    with pytest.raises(UnsupportedLayerError, match=r"layer 0 of the proxy \(sigmoid\)"):
        graph.check_supported()
