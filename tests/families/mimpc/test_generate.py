"""Generating mixed-integer instance sets: splits, the infeasible split, reproducibility, resuming, episodes."""

from __future__ import annotations

import numpy as np
import pytest

import bilevelbench.families.mimpc.generate as gen
from bilevelbench.data.instance_set import InstanceSet
from bilevelbench.errors import UsageError
from bilevelbench.families.mimpc.certify import MIQPCertifierSettings
from bilevelbench.families.mimpc.miqp import objective, row_residual, row_scale


def test_every_published_label_matches_its_parameters(tank_set):
    ds = InstanceSet.open(tank_set)
    s = ds.structure
    assert [len(ds.split(k)) for k in ("train", "valid", "test")] == [6, 2, 6]
    labels, theta = ds.labels, ds.params["theta"]
    ok = labels["status"] == "certified_optimal"
    assert ok[ds.split("test").indices].all()
    f = objective(s, labels["x"][ok], theta[ok])
    np.testing.assert_allclose(f, labels["objective"][ok], rtol=1e-12)
    assert np.max(row_residual(s, labels["x"][ok], theta[ok]) / row_scale(s)) <= 1e-7
    # parameters are the seed's draws, in draw order
    draws = gen.draws_for(gen.MIQPRequest(family="mimpc-tank", n_train=6, n_valid=2, n_test=6, seed=3), 2)
    test = ds.split("test")
    np.testing.assert_array_equal(test.params["theta"], draws[test.labels["draw"]])


def test_infeasible_draws_go_to_their_own_split(robot_set):
    ds = InstanceSet.open(robot_set)
    infeasible = ds.split("infeasible")
    assert len(infeasible) > 0, "seed 2 is chosen so that the robot sampler draws infeasible instances"
    assert set(infeasible.labels["status"]) == {"infeasible"}
    assert np.all(infeasible.checks["milp_infeasible"] == 1.0)
    assert np.all(np.isnan(infeasible.labels["x"]))
    for name in ("train", "valid", "test"):
        assert "infeasible" not in set(ds.split(name).labels["status"])
    # the drawn_for tag says which split's stream each infeasible draw came from
    assert set(infeasible.labels["drawn_for"]) <= {"train", "valid", "test"}


def test_closed_loop_reference_episodes_are_stored(tank_set):
    ds = InstanceSet.open(tank_set)
    ref = ds.closed_loop
    assert ref["stage_cost"].shape == (2, 4) and ref["completed"].all()
    test_positions = set(ds.split("test").indices.tolist())
    assert set(ref["start_index"].tolist()) <= test_positions
    # the exact MPC's first move from a start is that start's certified label
    first = ref["decisions"][:, 0]
    np.testing.assert_allclose(first, ds.labels["x"][ref["start_index"]], atol=1e-7)


def test_interrupted_generation_resumes_from_its_journal(tmp_path, monkeypatch):
    request = gen.MIQPRequest(family="mimpc-tank", n_train=0, n_valid=0, n_test=5, seed=8)
    settings = MIQPCertifierSettings(time_limit=120)
    real = gen.certify_miqp
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "certify_miqp", flaky)
    out = tmp_path / "t.h5"
    with pytest.raises(KeyboardInterrupt):
        gen.generate_miqp(request, out, settings)
    journal = tmp_path / "t.h5.partial.jsonl"
    assert not out.exists() and journal.exists()
    assert len(journal.read_text().splitlines()) == 1 + 3  # key line + three finished labels

    calls["n"] = -1000  # no more interruptions; count the solves of the second run
    gen.generate_miqp(request, out, settings)
    assert calls["n"] - (-1000) >= 2 and not journal.exists()
    fresh = gen.generate_miqp(request, tmp_path / "fresh.h5", settings)
    a, b = InstanceSet.open(out), InstanceSet.open(fresh)
    np.testing.assert_array_equal(a.params["theta"], b.params["theta"])
    np.testing.assert_array_equal(a.labels["objective"], b.labels["objective"])


def test_journal_of_another_request_is_refused(tmp_path):
    out = tmp_path / "t.h5"
    (tmp_path / "t.h5.partial.jsonl").write_text('{"key": "something else"}\n')
    with pytest.raises(UsageError, match="different request"):
        gen.generate_miqp(gen.MIQPRequest(family="mimpc-tank", n_train=0, n_valid=0, n_test=1, seed=1), out)


def test_request_validation():
    with pytest.raises(UsageError, match="unknown mixed-integer family"):
        gen.MIQPRequest(family="mimpc-car", n_train=1, n_valid=0, n_test=0, seed=0)
    with pytest.raises(UsageError, match="closed_loop_episodes"):
        gen.MIQPRequest(family="mimpc-tank", n_train=0, n_valid=0, n_test=1, seed=0, closed_loop_episodes=2,
                        closed_loop_steps=3)


def _assert_verify_catches_a_tampered_objective(data, tmp_path) -> None:
    """Instance 0's stored objective lowered by 1: verify flags that instance, and only it."""
    from bilevelbench.data.hdf5 import write_instance_set
    from bilevelbench.verify import verify_instance_set

    data.labels["objective"] = data.labels["objective"].copy()
    data.labels["objective"][0] -= 1.0
    bad = tmp_path / "bad.h5"
    write_instance_set(bad, data)
    report = verify_instance_set(InstanceSet.open(bad))
    assert [f[0] for f in report.failures] == [0] and "stored objective" in report.failures[0][2]


def test_verify_rechecks_mixed_integer_labels_and_catches_a_tampered_one(tank_set, robot_set, tmp_path):
    from bilevelbench.data.hdf5 import read_instance_set
    from bilevelbench.verify import verify_instance_set

    for path in (tank_set, robot_set):
        report = verify_instance_set(InstanceSet.open(path))
        assert report.ok, report.failures[:3]
    data = read_instance_set(tank_set)
    _assert_verify_catches_a_tampered_objective(data, tmp_path)


def test_verify_rechecks_best_known_labels_instead_of_refusing_them(tank_set, tmp_path):
    """A solve stopped above the gap (time limit or status) keeps its checked point as best_known (certify.py); the
    verifier re-checks that point like a certified one, without the gap, and still catches a tampered one."""
    from bilevelbench.data.hdf5 import read_instance_set, write_instance_set
    from bilevelbench.verify import verify_instance_set

    data = read_instance_set(tank_set)
    status = np.array([s.decode() if isinstance(s, bytes) else str(s) for s in data.labels["status"]], dtype="U20")
    status[0] = "best_known"
    data.labels["status"] = status.astype("S20")
    data.labels["dual_bound"] = data.labels["dual_bound"].copy()
    data.labels["dual_bound"][0] -= 10.0                      # far from the objective: no proof, still published
    kept = tmp_path / "best-known.h5"
    write_instance_set(kept, data)
    report = verify_instance_set(InstanceSet.open(kept))
    assert report.ok, report.failures[:3]
    _assert_verify_catches_a_tampered_objective(data, tmp_path)


def test_closed_loop_collection_keeps_the_states_an_exact_mpc_visits(tmp_path, monkeypatch):
    """sampling = "closed-loop" (the authors' data collection): each split holds the states of its own episodes,
    in order; consecutive states of an episode are the plant moved by the previous label's first input; the
    file regenerates identically (content) and resumes from its journal."""
    from bilevelbench.families.mimpc import problem as mimpc
    from bilevelbench.families.mimpc.closed_loop import apply_first_move

    request = gen.MIQPRequest(family="mimpc-robot", n_train=6, n_valid=0, n_test=4, seed=5, geometry="authors",
                              sampling="closed-loop", collect_steps=5)
    settings = MIQPCertifierSettings(time_limit=120)
    real, calls = gen.certify_miqp, {"n": 0, "stop": None}

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == calls["stop"]:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "certify_miqp", counted)
    ds = InstanceSet.open(gen.generate_miqp(request, tmp_path / "a.h5", settings))
    fresh_solves = calls["n"]
    s = ds.structure
    assert mimpc.geometry_of(s) == "authors"
    for split in ("train", "test"):
        part = ds.split(split)
        draws = part.labels["draw"]
        episode, step = draws // gen.EPISODE_STRIDE, draws % gen.EPISODE_STRIDE
        assert np.all(step < 5)
        starts = gen.draws_for(request, ("train", "valid", "test").index(split))
        theta, x = part.params["theta"], part.labels["x"]
        for i in range(len(part)):
            if step[i] == 0:
                np.testing.assert_array_equal(theta[i], starts[episode[i]])
            else:
                assert episode[i - 1] == episode[i] and step[i - 1] == step[i] - 1
                moved = apply_first_move("mimpc-robot", s, theta[i - 1], x[i - 1])
                np.testing.assert_allclose(theta[i, :4], moved.next_state, atol=1e-12)
                np.testing.assert_array_equal(theta[i, 4:], theta[i - 1, 4:])
    # no episode is shared by two splits: the train and test starts are different streams
    assert not set(map(tuple, ds.split("train").params["theta"])) & set(map(tuple, ds.split("test").params["theta"]))
    # interrupted in its second episode, then resumed: the first episode's 5 journaled states are not
    # solved again, and the file is the same
    calls.update(n=0, stop=8)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_miqp(request, tmp_path / "b.h5", settings)
    assert '"kind": "collect"' in (tmp_path / "b.h5.partial.jsonl").read_text()
    calls.update(n=0, stop=None)
    again = InstanceSet.open(gen.generate_miqp(request, tmp_path / "b.h5", settings))
    assert calls["n"] == fresh_solves - 5
    np.testing.assert_array_equal(again.params["theta"], ds.params["theta"])
    np.testing.assert_allclose(again.labels["objective"], ds.labels["objective"], rtol=1e-9)


def test_closed_loop_sampling_is_the_robots():
    with pytest.raises(UsageError, match="closed-loop sampling"):
        gen.MIQPRequest(family="mimpc-tank", n_train=1, n_valid=0, n_test=0, seed=0, sampling="closed-loop")
    with pytest.raises(UsageError, match="sampling must be"):
        gen.MIQPRequest(family="mimpc-robot", n_train=1, n_valid=0, n_test=0, seed=0, sampling="random")
