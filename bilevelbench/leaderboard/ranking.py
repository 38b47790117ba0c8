"""Grouping records by dataset, ranking them, and the latency/gap Pareto front.

Ranking rule, within one dataset (``docs/leaderboard.md``):

1. status: ``complete`` before ``partial`` before ``failed`` and ``skipped`` (equal);
2. ``feasible_rate``, higher first;
3. ``gap_mean``, lower first (control co-design sets: ``objective_gap``, the gap of the mean penalised
   objective to the best-known labels' mean, which can be negative);
4. ``latency_ms_median``, lower first; latency that bilevelbench measured (evaluate mode)
   comes before self-reported, unverified latency (score mode).

A missing (``null``) value sorts after every present value at its step. Records equal on all
four steps share a rank ("1, 2, 2, 4"); their order in the table then follows solver name,
version, date and file path, so that the output never depends on the order files were read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bilevelbench.errors import SchemaError
from bilevelbench.leaderboard.records import DatasetInfo, Record

STATUS_ORDER = {"complete": 0, "partial": 1, "failed": 2, "skipped": 2}

_MISSING = (1, 0.0)

#: The ranking rule in one paragraph, shown on the leaderboard (plain text).
RANKING_RULE = (
    "Within each dataset split, records are ranked by status (complete, then partial, then failed or skipped), "
    "then feasible rate (higher first), then mean gap (lower first), then median latency (lower first; latency "
    "measured by bilevelbench before self-reported, unverified latency). Missing values come last at each step; "
    "records equal on every step share a rank."
)


@dataclass(frozen=True)
class RankedEntry:
    """A record with its rank in its dataset and whether it is on the Pareto front."""

    rank: int
    record: Record
    on_front: bool


@dataclass(frozen=True)
class DatasetGroup:
    """All records of one dataset split, ranked best first."""

    dataset: DatasetInfo
    entries: tuple[RankedEntry, ...]


def group_key(record: Record) -> tuple[str, str, str]:
    """Records of the same dataset file (name and sha256) and split are ranked together."""
    return (record.dataset.name, record.dataset.sha256, record.dataset.split)


def rank_metric(family: str) -> str:
    """The metric ranked on after the feasible rate: the family's ``rank_metric`` (``gap_mean`` when the family's
    plugin is not installed)."""
    from bilevelbench.core.registry import find_family

    found = find_family(family)
    return found.rank_metric if found is not None else "gap_mean"


def rank_key(record: Record) -> tuple:
    """The sort key of the ranking rule; equal keys share a rank."""
    m = record.metrics
    rate, latency = m["feasible_rate"], m["latency_ms_median"]
    # the family's rank metric (``Family.rank_metric``): the mean gap, or where best-known references can be
    # beaten a signed measure such as the objective gap
    gap = m.get(rank_metric(record.dataset.family))
    if latency is None:
        latency_key = (2, 0.0)
    else:
        latency_key = (0 if record.latency_verified else 1, latency)
    return (
        STATUS_ORDER[record.status],
        _MISSING if rate is None else (0, -rate),
        _MISSING if gap is None else (0, gap),
        latency_key,
    )


def _tie_break(record: Record) -> tuple:
    return (record.solver.name, record.solver.version, record.date, record.mode, str(record.path))


def rank_records(records: Iterable[Record]) -> list[tuple[int, Record]]:
    """Sort the records of one dataset best first and number them.

    Parameters
    ----------
    records : iterable of Record
        Records of a single dataset split.

    Returns
    -------
    list of (int, Record)
        ``(rank, record)`` pairs, best first. Ranks start at 1; records with equal
        :func:`rank_key` share the rank of the first of them (competition ranking).
    """
    ordered = sorted(records, key=lambda r: (rank_key(r), _tie_break(r)))
    ranked: list[tuple[int, Record]] = []
    for i, record in enumerate(ordered):
        if i and rank_key(record) == rank_key(ordered[i - 1]):
            ranked.append((ranked[-1][0], record))
        else:
            ranked.append((i + 1, record))
    return ranked


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, lower being better in both coordinates.

    A point dominates another when it is no worse in both coordinates and strictly better
    in at least one. Identical points do not dominate each other, so both are kept.

    Parameters
    ----------
    points : sequence of (float, float)
        ``(latency, gap)`` pairs (any two "lower is better" quantities).

    Returns
    -------
    list of int
        Indices into ``points`` of the front, in ascending order of index.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            xj <= xi and yj <= yi and (xj < xi or yj < yi)
            for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def front_eligible(record: Record) -> bool:
    """Only complete runs with both a median latency and a mean gap take part in the front.

    A partial run's mean gap is over the instances it answered, so it is not comparable.
    """
    m = record.metrics
    return record.status == "complete" and m["latency_ms_median"] is not None and m["gap_mean"] is not None


def group_records(records: Iterable[Record]) -> list[DatasetGroup]:
    """Group records by dataset split, rank each group and mark its Pareto front.

    Parameters
    ----------
    records : iterable of Record

    Returns
    -------
    list of DatasetGroup
        Sorted by dataset name, sha256 and split.

    Raises
    ------
    SchemaError
        If two records name the same dataset file and split but disagree on its family,
        size or number of instances.
    """
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        groups.setdefault(group_key(record), []).append(record)
    result = []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda r: str(r.path))
        first = members[0]
        for other in members[1:]:
            if other.dataset != first.dataset:
                raise SchemaError(f"{other.path}: expected the same dataset description as {first.path} (both name "
                                  f"dataset {key[0]!r} with sha256 {key[1][:12]}..., split {key[2]!r}); received "
                                  f"{other.dataset} vs {first.dataset}")
        ranked = rank_records(members)
        eligible = [i for i, (_, r) in enumerate(ranked) if front_eligible(r)]
        points = [(ranked[i][1].metrics["latency_ms_median"], ranked[i][1].metrics["gap_mean"]) for i in eligible]
        on_front = {eligible[k] for k in pareto_front(points)}
        entries = tuple(RankedEntry(rank=rank, record=r, on_front=i in on_front) for i, (rank, r) in enumerate(ranked))
        result.append(DatasetGroup(dataset=first.dataset, entries=entries))
    return result
