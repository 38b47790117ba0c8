"""``spi-grid``: what every instance of a data set shares, and how instances are drawn (see :mod:`.grid`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bilevelbench.core.structure_digest import arrays_digest
from bilevelbench.errors import UsageError
from bilevelbench.families.spi import terrain

FAMILY = "spi-grid"


@dataclass(frozen=True)
class SPIStructure:
    """Grid size ``k``, interdiction ``budget`` and the terrain table (costs per type); ``interdiction`` is the
    cost an interdiction adds to a tile (the same for every tile of the data set)."""

    k: int
    budget: int
    interdiction: float
    terrain_cost: np.ndarray

    def __post_init__(self) -> None:
        if int(self.k) < 2:
            raise UsageError(f"spi-grid: --size must be at least 2, received {self.k}")
        if not 0 <= int(self.budget) <= int(self.k) ** 2 - 2:
            raise UsageError(f"spi-grid: --budget must be between 0 and {int(self.k) ** 2 - 2} (every tile but the "
                             f"start and the target) on a {self.k} x {self.k} grid, received {self.budget}")
        if not (np.isfinite(self.interdiction) and self.interdiction >= 0):
            raise UsageError(f"spi-grid: --interdiction-cost must be finite and >= 0, received {self.interdiction}")
        object.__setattr__(self, "terrain_cost", np.asarray(self.terrain_cost, dtype=np.float64))

    @property
    def size(self) -> str:
        return f"{self.k}x{self.k}-B{self.budget}"

    @property
    def n_tiles(self) -> int:
        return int(self.k) ** 2

    def arrays(self) -> dict[str, np.ndarray]:
        return {"k": np.array(int(self.k)), "budget": np.array(int(self.budget)),
                "interdiction": np.array(float(self.interdiction)), "terrain_cost": self.terrain_cost}

    def digest(self) -> str:
        return arrays_digest(self.arrays())


def structure_from_arrays(arrays: dict[str, np.ndarray]) -> SPIStructure:
    return SPIStructure(int(np.asarray(arrays["k"])), int(np.asarray(arrays["budget"])),
                        float(np.asarray(arrays["interdiction"])), np.asarray(arrays["terrain_cost"], float))


def sample_instances(s: SPIStructure, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` maps: ``costs`` (n, k, k), ``interdiction_cost`` (n, k, k), ``image`` (n, 8k, 8k, 3) uint8 and the
    ``terrain`` type indices (n, k, k)."""
    k = int(s.k)
    tex = terrain.textures()
    kinds = np.empty((n, k, k), dtype=np.int64)
    images = np.empty((n, k * terrain.TILE_PIXELS, k * terrain.TILE_PIXELS, 3), dtype=np.uint8)
    for i in range(n):
        kinds[i] = terrain.sample_terrain(rng, k)
        images[i] = terrain.render(kinds[i], rng, tex=tex)
    return {"costs": s.terrain_cost[kinds], "interdiction_cost": np.full((n, k, k), float(s.interdiction)),
            "image": images, "terrain": kinds}
