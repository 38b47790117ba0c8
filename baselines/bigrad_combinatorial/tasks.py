"""What the estimators need from each family: the solver's two levels on one sample, the network's inputs, the
labels as 0/1 arrays shaped like the costs, and the networks.

``spi-grid``: the costs ``c`` are the k x k tile costs, predicted from the map image by a small CNN; the leader
is the interdiction MILP (SCIP) on ``c``, the follower Dijkstra on ``c + d x``; ``x`` and ``y`` (the path) are
k x k 0/1 masks.

``tsp-interdiction``: the costs are the k x k distances, predicted from which cities an instance holds (a learned
8-dimensional position per city of the set; distance = Euclidean norm between positions); the leader is the
tour-edge search with Held-Karp on ``c``, the follower Held-Karp with the removed edges missing; ``x`` (removed
edges) and ``y`` (the tour's edges) are symmetric k x k 0/1 matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bilevelbench.errors import UsageError

#: Smallest predicted tile cost (Dijkstra needs non-negative weights; the family positive costs).
MIN_COST = 0.05
#: Dimension of the learned city positions (tsp-interdiction).
DIM = 8


# ----------------------------------------------------------------------------------------------- spi-grid
def spi_leader(c: np.ndarray, ctx) -> np.ndarray:
    from bilevelbench.families.spi.grid import interdict_milp

    d, budget = ctx
    return interdict_milp(np.maximum(c, MIN_COST), d, budget, time_limit=60.0).x


def spi_follower(c: np.ndarray, x: np.ndarray, ctx) -> np.ndarray:
    from bilevelbench.families.spi.grid import shortest_path

    d, _ = ctx
    return shortest_path(np.maximum(c, MIN_COST) + d * x)[1]


class TileCostCNN(nn.Module):
    """Image (B, 3, 8k, 8k) -> tile costs (B, k, k): two 3x3 convolutions at pixel level, 8x8 average pooling
    to one cell per tile, two 1x1 convolutions, softplus (+ MIN_COST), then scaled so that each map's mean tile
    cost is ``mean_cost`` (the train split's mean).

    The follower's path does not change when all costs are scaled, so a Hamming loss cannot teach the scale;
    the interdiction adds an absolute cost, so the leader's decision depends on it. The scale is therefore fixed
    from the data rather than learned.
    """

    def __init__(self, width: int = 16, mean_cost: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mean_cost", torch.tensor(float(mean_cost)))
        self.pixels = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AvgPool2d(8))
        self.tiles = nn.Sequential(nn.Conv2d(width, width, 1), nn.ReLU(), nn.Conv2d(width, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        raw = nn.functional.softplus(self.tiles(self.pixels(image)))[:, 0] + MIN_COST
        return raw * (self.mean_cost / raw.mean(dim=(1, 2), keepdim=True))


class TileScoreCNN(TileCostCNN):
    """SL: the same pixel trunk, then four 3x3 convolutions over the tile grid (a receptive field of 9 x 9 tiles)
    -> one interdiction logit per tile."""

    def __init__(self, width: int = 16) -> None:
        super().__init__(width)
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        self.tiles = nn.Sequential(*layers, nn.Conv2d(width, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.tiles(self.pixels(image))[:, 0]


@dataclass
class SPITask:
    k: int
    budget: int
    family = "spi-grid"
    leader = staticmethod(spi_leader)
    follower = staticmethod(spi_follower)

    @staticmethod
    def perturb(c: np.ndarray) -> np.ndarray:
        return np.maximum(c, MIN_COST)

    @staticmethod
    def coupling(contexts: list) -> np.ndarray:
        """``dw/dx``: an interdiction adds its tile's interdiction cost to the follower's tile weight."""
        return np.stack([ctx[0] for ctx in contexts])

    def inputs(self, params: dict) -> torch.Tensor:
        img = np.asarray(params["image"], dtype=np.float32)
        return torch.from_numpy(img).permute(0, 3, 1, 2) / 255.0

    def contexts(self, params: dict) -> list:
        d = np.asarray(params["interdiction_cost"], float)
        return [(d[i], self.budget) for i in range(d.shape[0])]

    def targets(self, labels: dict) -> tuple[np.ndarray, np.ndarray]:
        k = self.k
        return (np.asarray(labels["interdiction"], float).reshape(-1, k, k),
                np.asarray(labels["path"], float).reshape(-1, k, k))

    def true_value(self, params: dict, i: int, x: np.ndarray) -> float:
        from bilevelbench.families.spi.grid import shortest_path

        return shortest_path(np.asarray(params["costs"][i], float) + params["interdiction_cost"][i] * x)[0]

    def cost_model(self, params: dict | None = None) -> nn.Module:
        mean = 1.0 if params is None else float(np.mean(params["costs"]))
        return TileCostCNN(mean_cost=mean)

    def sl_model(self) -> nn.Module:
        return TileScoreCNN()

    def sl_decision(self, logits: np.ndarray) -> np.ndarray:
        """The ``budget`` highest-scoring tiles (never the start or the target): more interdiction never helps
        the follower, so the whole budget is used."""
        k = self.k
        flat = np.array(logits, dtype=np.float64).reshape(-1, k * k)
        flat[:, [0, k * k - 1]] = -np.inf
        x = np.zeros_like(flat)
        top = np.argsort(-flat, axis=1, kind="stable")[:, : self.budget]
        np.put_along_axis(x, top, 1.0, axis=1)
        return x.reshape(-1, k, k)

    def answer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float).reshape(x.shape[0], -1)


# --------------------------------------------------------------------------------------- tsp-interdiction
def tsp_leader(c: np.ndarray, ctx) -> np.ndarray:
    from bilevelbench.families.tsp.tour import interdict_search

    return interdict_search(_distances(c), ctx).removed


def tsp_follower(c: np.ndarray, x: np.ndarray, ctx) -> np.ndarray:
    from bilevelbench.families.tsp.tour import blocked, held_karp, tour_edges

    return tour_edges(held_karp(blocked(_distances(c), x))[1], c.shape[0])


def _distances(c: np.ndarray) -> np.ndarray:
    d = np.maximum(0.5 * (c + c.T), 0.0)
    np.fill_diagonal(d, 0.0)
    return d


class CityDistance(nn.Module):
    """City indices (B, k) -> distances (B, k, k): a learned position in R^dim per city of the set, Euclidean
    distances between positions."""

    def __init__(self, n_cities: int, dim: int = DIM, scale: float = 30.0) -> None:
        super().__init__()
        self.position = nn.Embedding(n_cities, dim)
        nn.init.normal_(self.position.weight, std=scale / np.sqrt(dim))

    def forward(self, cities: torch.Tensor) -> torch.Tensor:
        p = self.position(cities)
        diff = p[:, :, None, :] - p[:, None, :, :]
        return torch.sqrt((diff ** 2).sum(-1) + 1e-9)


class EdgeScore(nn.Module):
    """SL: city indices (B, k) -> one removal logit per edge (B, k, k), symmetric: an MLP on the pair's learned
    embeddings ``[|e_i - e_j|, e_i * e_j]``."""

    def __init__(self, n_cities: int, dim: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_cities, dim)
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, cities: torch.Tensor) -> torch.Tensor:
        e = self.embed(cities)
        a, b = e[:, :, None, :], e[:, None, :, :]
        a, b = torch.broadcast_tensors(a, b)
        return self.mlp(torch.cat([(a - b).abs(), a * b], -1))[..., 0]


@dataclass
class TSPTask:
    k: int
    budget: int
    n_cities: int
    family = "tsp-interdiction"
    leader = staticmethod(tsp_leader)
    follower = staticmethod(tsp_follower)

    @staticmethod
    def perturb(c: np.ndarray) -> np.ndarray:
        return np.stack([_distances(ci) for ci in c])

    @staticmethod
    def coupling(contexts: list) -> float:
        """A removal deletes the edge: no finite ``dw/dx``, so the loss reaches the leader only directly."""
        return 0.0

    def inputs(self, params: dict) -> torch.Tensor:
        return torch.from_numpy(np.asarray(params["cities"], dtype=np.int64))

    def contexts(self, params: dict) -> list:
        return [self.budget] * len(params["cities"])

    def targets(self, labels: dict) -> tuple[np.ndarray, np.ndarray]:
        from bilevelbench.families.tsp.tour import tour_edges

        k = self.k
        tours = np.asarray(labels["tour"], float)
        edges = np.stack([tour_edges(t.astype(np.int64), k) for t in tours]) if len(tours) else np.zeros((0, k, k))
        return np.asarray(labels["removed"], float).reshape(-1, k, k), edges

    def true_value(self, params: dict, i: int, x: np.ndarray) -> float:
        from bilevelbench.families.tsp.tour import blocked, held_karp

        return held_karp(blocked(np.asarray(params["distances"][i], float), x))[0]

    def cost_model(self, params: dict | None = None) -> nn.Module:
        return CityDistance(self.n_cities)

    def sl_model(self) -> nn.Module:
        return EdgeScore(self.n_cities)

    def sl_decision(self, logits: np.ndarray) -> np.ndarray:
        """The ``budget`` highest-scoring edges (removing more never shortens a tour)."""
        k = self.k
        iu, ju = np.triu_indices(k, 1)
        sym = np.asarray(logits, float)
        scores = (sym + sym.transpose(0, 2, 1))[:, iu, ju]
        x = np.zeros((sym.shape[0], k, k))
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.budget]
        for i in range(sym.shape[0]):
            x[i, iu[top[i]], ju[top[i]]] = 1.0
            x[i, ju[top[i]], iu[top[i]]] = 1.0
        return x

    def answer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, float).reshape(x.shape[0], -1)


def task_for(family: str, structure) -> SPITask | TSPTask:
    """The adapter of a family's structure, or a clear error."""
    if family == "spi-grid":
        return SPITask(int(structure.k), int(structure.budget))
    if family == "tsp-interdiction":
        return TSPTask(int(structure.k), int(structure.budget), int(structure.city_xy.shape[0]))
    raise UsageError(f"bigrad_combinatorial trains on spi-grid and tsp-interdiction sets, received {family!r}")
