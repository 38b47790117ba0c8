"""Shortest path with interdiction on a k x k grid of tiles (the Warcraft task of BiGrad, Alesiani 2023).

A path moves between 8-neighbouring tiles from the top-left tile to the bottom-right one; its cost is the sum
over the tiles it visits (both ends included) of ``costs + interdiction_cost * x``. The leader picks ``x``
(0/1 per tile, at most ``budget`` ones, never the start or the target tile, which every path crosses) to
maximise the follower's shortest-path cost.

Two exact methods, independent of each other:

* :func:`interdict_milp`: one MILP by LP duality of the inner shortest path (node potentials ``pi`` with
  ``pi_v <= pi_u + costs_v + d_v x_v`` on every move ``u -> v`` and ``pi_start <= costs_start``; maximise
  ``pi_target``), solved by SCIP at zero gap;
* :func:`interdict_search`: a depth-``budget`` search that branches only on the tiles of the current shortest
  path. It is exact because interdicting tiles off the current shortest path ``P`` never raises the shortest
  cost above ``cost(P)``, so some optimal interdiction meets ``P`` (and recursively).

The follower is re-solved by Dijkstra (:func:`shortest_path`, SciPy's compiled implementation on the move graph
with the cost of the entered tile on each arc).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra

from bilevelbench.errors import SolverError, UsageError

#: The 8 moves (row, column offsets).
MOVES = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@lru_cache(maxsize=16)
def moves(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Arcs ``(tail, head)`` of the 8-neighbour move graph on a k x k grid (tiles numbered row-major)."""
    tails, heads = [], []
    for r in range(k):
        for c in range(k):
            for dr, dc in MOVES:
                rr, cc = r + dr, c + dc
                if 0 <= rr < k and 0 <= cc < k:
                    tails.append(r * k + c)
                    heads.append(rr * k + cc)
    return np.asarray(tails, dtype=np.int64), np.asarray(heads, dtype=np.int64)


def check_grid(costs: np.ndarray, interdiction_cost: np.ndarray | None = None, budget: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Validate one instance; return ``(costs, interdiction_cost)`` as float (k, k) arrays.

    Raises
    ------
    UsageError
        On a non-square or too small grid, NaN/inf or non-positive tile costs, negative interdiction costs, or a
        budget outside ``0 .. k*k - 2``.
    """
    costs = np.asarray(costs, dtype=np.float64)
    if costs.ndim != 2 or costs.shape[0] != costs.shape[1] or costs.shape[0] < 2:
        raise UsageError(f"spi-grid: costs must be a k x k grid with k >= 2, received shape {costs.shape}")
    if not np.all(np.isfinite(costs)) or np.any(costs <= 0):
        raise UsageError("spi-grid: tile costs must be finite and positive (a path's cost is a sum of tile costs)")
    d = np.ones_like(costs) if interdiction_cost is None else np.asarray(interdiction_cost, dtype=np.float64)
    if d.shape != costs.shape or not np.all(np.isfinite(d)) or np.any(d < 0):
        raise UsageError(f"spi-grid: interdiction_cost must be finite, >= 0 and of shape {costs.shape}, "
                         f"received shape {d.shape}")
    k = costs.shape[0]
    if budget is not None and not 0 <= int(budget) <= k * k - 2:
        raise UsageError(f"spi-grid: the budget must be between 0 and {k * k - 2} (every tile but the start and "
                         f"the target) on a {k} x {k} grid, received {budget}")
    return costs, d


def shortest_path(weights: np.ndarray) -> tuple[float, np.ndarray]:
    """The follower: the cheapest start-to-target path over tile weights (k, k).

    Returns
    -------
    cost : float
        Sum of the weights of the visited tiles, both ends included.
    path : (k, k) array of 0/1
        The tiles of one cheapest path (ties broken by SciPy's Dijkstra, deterministically).
    """
    w = np.asarray(weights, dtype=np.float64)
    k = w.shape[0]
    tails, heads = moves(k)
    graph = sp.csr_matrix((w.reshape(-1)[heads], (tails, heads)), shape=(k * k, k * k))
    dist, pred = dijkstra(graph, directed=True, indices=0, return_predecessors=True)
    target = k * k - 1
    if not np.isfinite(dist[target]):
        raise SolverError("spi-grid: the target is unreachable (the move graph is disconnected)")
    path = np.zeros(k * k)
    node = target
    while node >= 0:
        path[node] = 1.0
        node = pred[node]
    return float(dist[target] + w.reshape(-1)[0]), path.reshape(k, k)


def interdicted(costs: np.ndarray, d: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Tile weights under interdiction ``x``: ``costs + d * x``."""
    return costs + d * np.asarray(x, dtype=np.float64)


@dataclass
class Interdiction:
    """An exact method's answer."""

    x: np.ndarray
    path: np.ndarray
    objective: float
    status: str
    time_s: float
    detail: str = ""


def interdict_search(costs: np.ndarray, interdiction_cost: np.ndarray | None, budget: int) -> Interdiction:
    """Exact interdiction by branching on the tiles of the current shortest path (see the module docstring).

    The search visits at most ``L^budget`` Dijkstra solves, ``L`` the number of tiles on a shortest path; ties
    in the objective keep the first interdiction found in row-major branching order.
    """
    costs, d = check_grid(costs, interdiction_cost, budget)
    k = costs.shape[0]
    start = time.perf_counter()
    forbidden = {0, k * k - 1}
    best = [-np.inf, np.zeros(k * k)]
    solves = [0]

    def recurse(x: np.ndarray, remaining: int) -> None:
        value, path = shortest_path(interdicted(costs, d, x.reshape(k, k)))
        solves[0] += 1
        if value > best[0] + 1e-12:
            best[0], best[1] = value, x.copy()
        if remaining == 0:
            return
        for tile in np.flatnonzero(path.reshape(-1)):
            if tile in forbidden or x[tile] or d.reshape(-1)[tile] == 0:
                continue
            x[tile] = 1.0
            recurse(x, remaining - 1)
            x[tile] = 0.0

    recurse(np.zeros(k * k), int(budget))
    x = best[1].reshape(k, k)
    value, path = shortest_path(interdicted(costs, d, x))
    return Interdiction(x, path, value, "optimal", time.perf_counter() - start, f"{solves[0]} Dijkstra solves")


def interdict_milp(costs: np.ndarray, interdiction_cost: np.ndarray | None, budget: int,
                   time_limit: float = 600.0) -> Interdiction:
    """Exact interdiction as one MILP (LP duality of the follower), SCIP at zero gap (see the module docstring).

    Returns status ``optimal`` only when SCIP proves it; ``time_limit`` with its incumbent otherwise.
    """
    import pyscipopt

    costs, d = check_grid(costs, interdiction_cost, budget)
    k = costs.shape[0]
    n = k * k
    c, dd = costs.reshape(-1), d.reshape(-1)
    tails, heads = moves(k)
    m = pyscipopt.Model("spi")
    m.hideOutput()
    m.setParam("limits/time", float(time_limit))
    m.setParam("limits/gap", 0.0)
    m.setParam("limits/absgap", 0.0)
    m.setParam("randomization/randomseedshift", 0)
    # every potential lies within the cost of the most expensive simple path: valid, finite bounds
    cap = float(np.sum(c + dd))
    x = [m.addVar(vtype="B", name=f"x{v}", ub=0.0 if v in (0, n - 1) or dd[v] == 0 else 1.0) for v in range(n)]
    pi = [m.addVar(lb=0.0, ub=cap, name=f"pi{v}") for v in range(n)]
    m.addCons(pi[0] <= c[0])
    for u, v in zip(tails, heads, strict=True):
        m.addCons(pi[v] <= pi[u] + c[v] + dd[v] * x[v])
    m.addCons(pyscipopt.quicksum(x) <= int(budget))
    m.setObjective(pi[n - 1], "maximize")
    start = time.perf_counter()
    m.optimize()
    elapsed = time.perf_counter() - start
    status = m.getStatus()
    if m.getNSols() == 0:
        raise SolverError(f"spi-grid: SCIP ended with {status!r} and no interdiction")
    sol = m.getBestSol()
    xv = np.round([m.getSolVal(sol, var) for var in x]).reshape(k, k)
    value, path = shortest_path(interdicted(costs, d, xv))
    mapped = "optimal" if status == "optimal" else "time_limit"
    detail = f"SCIP {status}, objective {m.getObjVal():.12g}, dual bound {m.getDualbound():.12g}"
    return Interdiction(xv, path, value, mapped, elapsed, detail)
