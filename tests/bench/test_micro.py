"""Micro-benchmarks of hot functions (pytest-benchmark). Skipped in the normal run (``--benchmark-skip`` in the
pytest options); run with ``python -m pytest tests/bench --benchmark-only`` (or ``make bench-micro``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")


def test_relative_gap(benchmark):
    from bilevelbench.evaluate import metrics

    rng = np.random.default_rng(0)
    obj, ref = rng.normal(size=100_000), rng.normal(size=100_000)
    out = benchmark(metrics.relative_gap, obj, ref)
    assert out.shape == (100_000,)


def test_dcopf_flows_case300(benchmark):
    from bilevelbench.families.dcopf.generate import load_structure
    from bilevelbench.families.dcopf.problem import sample_loads

    s, _ = load_structure("case300")
    pd = sample_loads(s, np.random.default_rng(0), 256)
    pg = np.tile((s.pmin + s.pmax) / 2, (256, 1))
    f = benchmark(s.flows, pg, pd)
    assert f.shape == (256, s.n_branch)


def test_batched_qp_layer_forward(benchmark):
    torch = pytest.importorskip("torch")
    from bilevelbench.torch.qp_layer import BatchedQP

    rng = np.random.default_rng(0)
    n, p, B = 9, 8, 256
    S = rng.uniform(size=(n, n))
    H = torch.tensor(S @ S.T + 0.1 * np.eye(n))
    F = torch.tensor(rng.uniform(-1, 1, size=(p, n)))
    layer = BatchedQP(H, F)
    q = torch.tensor(rng.normal(size=(B, n)))
    b = torch.tensor(rng.uniform(0.5, 1.5, size=(B, p)))
    with torch.no_grad():
        z = benchmark(layer, q, b)
    assert z.shape == (B, n)
