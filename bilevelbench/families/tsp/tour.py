"""TSP with edge interdiction (the TSP task of BiGrad, Alesiani 2023, after Pogancic et al. 2020).

``k`` cities with symmetric distances; the leader removes up to ``budget`` edges (a removed edge cannot be
travelled) to maximise the length of the salesman's shortest closed tour through every city.

Removing at most ``k - 3`` edges from the complete graph always leaves a Hamiltonian cycle (Ore 1960: a graph on
``k`` vertices with at least ``C(k-1, 2) + 2`` edges is Hamiltonian), so the budget is limited to ``k - 3``.

Methods, each independent of the others:

* :func:`held_karp`: the follower exactly, by the Held-Karp dynamic programme (vectorised by subset size);
* :func:`tsp_milp`: the follower exactly, as a MILP (degree constraints and subtour cuts added until the tour is
  one cycle; HiGHS through :func:`scipy.optimize.milp`), used to re-check labels;
* :func:`interdict_search`: the leader exactly, by a depth-``budget`` search over the edges of the current
  optimal tour. It is exact because removing edges off the current optimal tour ``T`` leaves ``T`` available, so
  some optimal removal set meets ``T`` (and recursively);
* :func:`interdict_enumerate`: the leader by enumerating every removal set (the oracle on small instances).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bilevelbench.errors import SolverError, UsageError


def check_distances(distances: np.ndarray, budget: int | None = None) -> np.ndarray:
    """Validate one instance's distances; return them as a float (k, k) array.

    Raises
    ------
    UsageError
        On a non-square matrix, fewer than 4 cities, NaN/inf or negative distances, an asymmetric matrix, or a
        budget outside ``0 .. k - 3``.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 4:
        raise UsageError(f"tsp-interdiction: distances must be a k x k matrix with k >= 4 cities, received shape "
                         f"{d.shape}")
    off = ~np.eye(d.shape[0], dtype=bool)
    if not np.all(np.isfinite(d[off])) or np.any(d[off] < 0):
        raise UsageError("tsp-interdiction: distances between cities must be finite and >= 0")
    if not np.allclose(d, d.T, rtol=0, atol=1e-9 * max(1.0, float(np.max(d[off])))):
        raise UsageError("tsp-interdiction: distances must be symmetric (the tour has no direction)")
    if budget is not None:
        check_budget(d.shape[0], budget)
    return d


def check_budget(k: int, budget: int) -> None:
    """Refuse a budget that could leave no tour (see the module docstring)."""
    if not 0 <= int(budget) <= int(k) - 3:
        raise UsageError(f"tsp-interdiction: the budget must be between 0 and k - 3 = {int(k) - 3} with {k} cities "
                         f"(more removed edges can leave no tour at all), received {budget}")


def blocked(distances: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Distances with removed edges set to +inf (``removed`` symmetric 0/1, (k, k))."""
    d = np.array(distances, dtype=np.float64)
    d[np.asarray(removed) > 0.5] = np.inf
    return d


@lru_cache(maxsize=8)
def _subsets(m: int) -> tuple[np.ndarray, ...]:
    """Masks over ``m`` cities grouped by size, as arrays."""
    masks = np.arange(1 << m)
    sizes = np.array([v.bit_count() for v in range(1 << m)])
    return tuple(masks[sizes == s] for s in range(m + 1))


def held_karp(distances: np.ndarray) -> tuple[float, np.ndarray]:
    """The shortest closed tour through every city (+inf entries are missing edges).

    Returns
    -------
    length : float
        The tour's length; ``inf`` when no tour exists.
    tour : (k,) int array
        The visiting order, starting at city 0, its second city smaller than its last (a canonical direction).
    """
    d = np.asarray(distances, dtype=np.float64)
    k = d.shape[0]
    m = k - 1                                    # cities 1..k-1 are bits 0..m-1; the tour starts at city 0
    inner = d[1:, 1:]
    full = 1 << m
    dp = np.full((full, m), np.inf)
    parent = np.full((full, m), -1, dtype=np.int64)
    single = 1 << np.arange(m)
    dp[single, np.arange(m)] = d[0, 1:]
    into = inner.T                                  # into[t, j]: the edge j -> t
    for size, masks in enumerate(_subsets(m)):
        if size < 2:
            continue
        # pull: the best path over ``mask`` ending at t comes from ``mask - t`` ending at some j
        prev = masks[:, None] ^ (1 << np.arange(m))[None, :]        # (n, t)
        inside = (masks[:, None] >> np.arange(m)[None, :]) & 1 == 1
        cand = dp[prev] + into[None, :, :]                           # (n, t, j)
        best_j = np.argmin(cand, axis=2)
        best = np.take_along_axis(cand, best_j[:, :, None], axis=2)[:, :, 0]
        best[~inside] = np.inf
        dp[masks] = best
        parent[masks] = np.where(inside, best_j, -1)
    closing = dp[full - 1] + d[1:, 0]
    last = int(np.argmin(closing))
    length = float(closing[last])
    if not np.isfinite(length):
        return float("inf"), np.arange(k)
    order = [last]
    mask = full - 1
    while True:
        j = order[-1]
        p = parent[mask, j]
        mask ^= 1 << j
        if p < 0:
            break
        order.append(int(p))
    tour = np.array([0] + [j + 1 for j in reversed(order)], dtype=np.int64)
    return length, canonical(tour)


def canonical(tour: np.ndarray) -> np.ndarray:
    """The tour starting at city 0, its second city smaller than its last."""
    tour = np.asarray(tour, dtype=np.int64)
    start = int(np.flatnonzero(tour == 0)[0])
    tour = np.roll(tour, -start)
    if len(tour) > 2 and tour[1] > tour[-1]:
        tour = np.concatenate([tour[:1], tour[1:][::-1]])
    return tour


def tour_length(distances: np.ndarray, tour: np.ndarray) -> float:
    """Length of the closed tour ``tour`` (inf when it uses a missing edge)."""
    t = np.asarray(tour, dtype=np.int64)
    return float(np.sum(np.asarray(distances, float)[t, np.roll(t, -1)]))


def tour_edges(tour: np.ndarray, k: int) -> np.ndarray:
    """The tour as a symmetric 0/1 adjacency matrix (k, k)."""
    t = np.asarray(tour, dtype=np.int64)
    a = np.zeros((k, k))
    a[t, np.roll(t, -1)] = 1.0
    a[np.roll(t, -1), t] = 1.0
    return a


def is_tour(tour: np.ndarray, k: int) -> bool:
    """Whether ``tour`` visits each of the ``k`` cities exactly once."""
    t = np.asarray(tour)
    return t.shape == (k,) and np.all(np.isfinite(t)) and np.array_equal(np.sort(t.astype(np.int64)), np.arange(k))


def tsp_milp(distances: np.ndarray, time_limit: float = 60.0) -> tuple[float, np.ndarray]:
    """The shortest tour as a MILP: edge variables, degree two at every city, subtour cuts added until one cycle.

    An independent re-check of :func:`held_karp` (HiGHS branch and bound through :func:`scipy.optimize.milp`).

    Raises
    ------
    SolverError
        When HiGHS proves no tour exists or stops without an optimal solution.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse.csgraph import connected_components

    d = np.asarray(distances, dtype=np.float64)
    k = d.shape[0]
    iu, ju = np.triu_indices(k, 1)
    ok = np.isfinite(d[iu, ju])
    iu, ju = iu[ok], ju[ok]
    n = iu.size
    cost = d[iu, ju]
    degree = np.zeros((k, n))
    degree[iu, np.arange(n)] = 1.0
    degree[ju, np.arange(n)] = 1.0
    rows, lbs = [degree], [np.full(k, 2.0)]
    ubs = [np.full(k, 2.0)]
    start = time.perf_counter()
    for _ in range(200):
        a = np.vstack(rows)
        res = milp(cost, integrality=np.ones(n), bounds=Bounds(0, 1),
                   constraints=LinearConstraint(a, np.concatenate(lbs), np.concatenate(ubs)),
                   options={"time_limit": max(1.0, time_limit - (time.perf_counter() - start)),
                            "mip_rel_gap": 0.0})
        if res.status != 0 or res.x is None:
            raise SolverError(f"tsp-interdiction: the TSP MILP ended without an optimal tour ({res.message})")
        x = np.round(res.x)
        adj = np.zeros((k, k))
        adj[iu[x > 0.5], ju[x > 0.5]] = 1.0
        count, comp = connected_components(adj, directed=False)
        if count == 1:
            return float(cost @ x), _order(adj + adj.T)
        for c in range(count):              # a cut for every subtour: at least two edges leave its cities
            inside = comp == c
            crossing = (inside[iu] != inside[ju]).astype(float)
            rows.append(crossing[None, :])
            lbs.append(np.array([2.0]))
            ubs.append(np.array([np.inf]))
    raise SolverError("tsp-interdiction: the TSP MILP needed more than 200 rounds of subtour cuts")


def _order(adj: np.ndarray) -> np.ndarray:
    k = adj.shape[0]
    tour, prev = [0], -1
    while len(tour) < k:
        nxt = [int(v) for v in np.flatnonzero(adj[tour[-1]]) if v != prev and v not in tour]
        prev = tour[-1]
        tour.append(nxt[0])
    return canonical(np.array(tour))


@dataclass
class Interdiction:
    """An exact method's answer: the removed edges (symmetric 0/1), the follower's tour and its length."""

    removed: np.ndarray
    tour: np.ndarray
    objective: float
    time_s: float
    detail: str


def interdict_search(distances: np.ndarray, budget: int) -> Interdiction:
    """The optimal removal of at most ``budget`` edges, by branching on the edges of the current optimal tour."""
    d = check_distances(distances, budget)
    k = d.shape[0]
    start = time.perf_counter()
    solves = [0]
    memo: dict[frozenset, float] = {}
    best: list = [-np.inf, frozenset()]

    def value(removed: frozenset) -> tuple[float, np.ndarray]:
        solves[0] += 1
        return held_karp(blocked(d, _matrix(removed, k)))

    def recurse(removed: frozenset, remaining: int) -> None:
        if removed in memo:
            return
        length, tour = value(removed)
        memo[removed] = length
        if remaining == 0 or not np.isfinite(length):
            if length > best[0]:
                best[:] = [length, removed]
            return
        for a, b in zip(tour, np.roll(tour, -1), strict=True):
            recurse(removed | {(min(a, b), max(a, b))}, remaining - 1)

    recurse(frozenset(), int(budget))
    removed = _matrix(best[1], k)
    length, tour = held_karp(blocked(d, removed))
    return Interdiction(removed, tour, length, time.perf_counter() - start, f"{solves[0]} Held-Karp solves")


def interdict_enumerate(distances: np.ndarray, budget: int) -> Interdiction:
    """The optimal removal by trying every set of exactly ``budget`` edges (removing more never shortens a tour)."""
    d = check_distances(distances, budget)
    k = d.shape[0]
    start = time.perf_counter()
    edges = list(zip(*np.triu_indices(k, 1), strict=True))
    best = (-np.inf, frozenset())
    count = 0
    for chosen in itertools.combinations(edges, int(budget)):
        count += 1
        length = held_karp(blocked(d, _matrix(frozenset(chosen), k)))[0]
        if length > best[0]:
            best = (length, frozenset(chosen))
    removed = _matrix(best[1], k)
    length, tour = held_karp(blocked(d, removed))
    return Interdiction(removed, tour, length, time.perf_counter() - start, f"{count} removal sets")


def _matrix(edges: frozenset, k: int) -> np.ndarray:
    m = np.zeros((k, k))
    for a, b in edges:
        m[a, b] = m[b, a] = 1.0
    return m
