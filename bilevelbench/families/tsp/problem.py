"""``tsp-interdiction``: what every instance of a data set shares (the city set), and how instances are drawn.

The paper draws its ``k`` cities from 100 country capitals (Pogancic et al. 2020; the flags are the inputs). That
list cannot be downloaded here, so the city set is 100 points drawn once, uniformly in a 100 x 100 square, from
the fixed seed :data:`CITY_SEED`; distances are Euclidean. The set is stored in every file (``city_xy``), so a
file never depends on this module to be read. A learned method sees which cities an instance holds
(``cities``, indices into the set) and must learn their distances, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.core.structure_digest import arrays_digest
from bilevelbench.errors import UsageError
from bilevelbench.families.tsp.tour import check_budget

FAMILY = "tsp-interdiction"
#: How many cities the fixed set holds, and the seed that draws it.
N_CITIES = 100
CITY_SEED = 20200214


def city_set() -> np.ndarray:
    """The fixed set of 100 cities, (100, 2) coordinates in [0, 100]^2."""
    rng = np.random.default_rng(np.random.SeedSequence(CITY_SEED))
    return np.round(rng.uniform(0.0, 100.0, size=(N_CITIES, 2)), 3)


@dataclass(frozen=True)
class TSPStructure:
    """``k`` cities per instance, a removal ``budget`` and the city set's coordinates ``city_xy`` (N, 2)."""

    k: int
    budget: int
    city_xy: np.ndarray

    def __post_init__(self) -> None:
        xy = np.asarray(self.city_xy, dtype=np.float64)
        object.__setattr__(self, "city_xy", xy)
        if xy.ndim != 2 or xy.shape[1] != 2 or not np.all(np.isfinite(xy)):
            raise UsageError(f"tsp-interdiction: the city set must be finite (N, 2) coordinates, received shape "
                             f"{xy.shape}")
        if not 4 <= int(self.k) <= xy.shape[0]:
            raise UsageError(f"tsp-interdiction: --size must be between 4 and {xy.shape[0]} (cities are drawn "
                             f"from a set of {xy.shape[0]}), received {self.k}")
        if int(self.k) > 16:
            raise UsageError(f"tsp-interdiction: --size above 16 is refused (the exact follower is a Held-Karp "
                             f"programme with 2^(k-1) states), received {self.k}")
        check_budget(int(self.k), int(self.budget))

    @property
    def size(self) -> str:
        return f"{self.k}-B{self.budget}"

    @property
    def n_edges(self) -> int:
        return int(self.k) * (int(self.k) - 1) // 2

    def arrays(self) -> dict[str, np.ndarray]:
        return {"k": np.array(int(self.k)), "budget": np.array(int(self.budget)), "city_xy": self.city_xy}

    def digest(self) -> str:
        return arrays_digest(self.arrays())


def structure_from_arrays(arrays: dict[str, np.ndarray]) -> TSPStructure:
    return TSPStructure(int(np.asarray(arrays["k"])), int(np.asarray(arrays["budget"])),
                        np.asarray(arrays["city_xy"], float))


def distances_of(xy: np.ndarray, cities: np.ndarray) -> np.ndarray:
    """Euclidean distances (..., k, k) between the chosen cities."""
    p = xy[np.asarray(cities, dtype=np.int64)]
    return np.linalg.norm(p[..., :, None, :] - p[..., None, :, :], axis=-1)


def sample_instances(s: TSPStructure, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` instances: ``cities`` (n, k) sorted indices into the set and their ``distances`` (n, k, k)."""
    k, total = int(s.k), s.city_xy.shape[0]
    cities = np.stack([np.sort(rng.choice(total, size=k, replace=False)) for _ in range(n)]) if n else \
        np.zeros((0, k), dtype=np.int64)
    return {"cities": cities.astype(np.int64), "distances": distances_of(s.city_xy, cities)}
