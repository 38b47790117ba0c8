"""The ranking rule and the Pareto front."""

from __future__ import annotations

from pathlib import Path

from bilevelbench.leaderboard import group_records, load_records, pareto_front, rank_records
from bilevelbench.leaderboard.records import parse_record
from tests.leaderboard.factory import SHA_A, SHA_B, make_record


def _records(*dicts):
    return [parse_record(d, Path(f"r{i}.json")) for i, d in enumerate(dicts)]


def test_ranking_order_of_the_sample(site):
    groups = {g.dataset.sha256: g for g in group_records(load_records(site.source))}
    a = groups[SHA_A]
    names = [e.record.solver.name for e in a.entries]
    assert names == ["exact", "**bold** a|b", "<script>window.__pwned=1</script>|pipe", "fastnet", "midnet",
                     "partialnet", "crashy", "picky"]
    assert [e.rank for e in a.entries] == list(range(1, 9))
    assert [e.record.solver.name for e in groups[SHA_B].entries] == ["exact", "fastnet"]


def test_status_beats_feasibility_beats_gap_beats_latency():
    records = _records(
        make_record(solver="partial-perfect", status="partial", feasible_rate=1.0, gap_mean=0.0, latency=0.1),
        make_record(solver="less-feasible", feasible_rate=0.9, gap_mean=0.0, latency=0.1),
        make_record(solver="slow", gap_mean=1e-3, latency=100.0),
        make_record(solver="fast", gap_mean=1e-3, latency=1.0),
        make_record(solver="best", gap_mean=1e-4, latency=1000.0),
        make_record(solver="self-reported-fast", mode="score", gap_mean=1e-3, latency=0.01),
        make_record(solver="no-gap", gap_mean=None, latency=0.01),
        make_record(solver="skipped", status="skipped", feasible_rate=None, gap_mean=None, latency=None),
        make_record(solver="failed", status="failed", feasible_rate=0.0, gap_mean=None, latency=None),
    )
    ranked = rank_records(records)
    assert [r.solver.name for _, r in ranked] == [
        "best", "fast", "slow", "self-reported-fast", "no-gap", "less-feasible", "partial-perfect", "failed",
        "skipped"]


def test_ties_share_a_rank_and_are_ordered_by_name():
    records = _records(
        make_record(solver="zeta", gap_mean=1e-6, latency=2.0),
        make_record(solver="alpha", gap_mean=1e-6, latency=2.0),
        make_record(solver="beta", gap_mean=1e-7, latency=9.0),
        make_record(solver="gamma", gap_mean=1e-5, latency=1.0),
    )
    assert [(rank, r.solver.name) for rank, r in rank_records(records)] == [
        (1, "beta"), (2, "alpha"), (2, "zeta"), (4, "gamma")]


def test_pareto_front_hand_made():
    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 4.0), (4.0, 1.0), (2.0, 3.0), (5.0, 1.0), (0.5, 10.0)]
    # (3, 4) is dominated by (2, 3); (5, 1) by (4, 1); the duplicate (2, 3) points do not dominate each other.
    assert pareto_front(points) == [0, 1, 3, 4, 6]
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 1.0)]) == [0]
    assert pareto_front([(1.0, 0.0), (1.0, 1.0)]) == [0]


def test_front_only_uses_complete_records_with_latency_and_gap(site):
    groups = {g.dataset.sha256: g for g in group_records(load_records(site.source))}
    front = {e.record.solver.name for e in groups[SHA_A].entries if e.on_front}
    # partialnet (1 ms, 1e-6) would dominate several, but a partial run's mean gap is not comparable.
    assert front == {"exact", "**bold** a|b"}
    assert {e.record.solver.name for e in groups[SHA_B].entries if e.on_front} == {"exact", "fastnet"}


def test_splits_of_one_file_are_ranked_separately():
    groups = group_records(_records(make_record(split="test"), make_record(split="valid"),
                                    make_record(split="test", solver="b")))
    assert [(g.dataset.split, len(g.entries)) for g in groups] == [("test", 2), ("valid", 1)]
