"""Synthetic terrain maps for ``spi-grid``: tile types, their costs, and an RGB image in which every type has its
own texture, so a network must learn costs from pixels as in the Warcraft shortest-path task.

The Warcraft II maps of Pogancic et al. (2020) cannot be downloaded here. The generated maps differ from them:
the terrain is a Voronoi partition of the grid into regions of one type each (not hand-drawn game maps), the
textures are procedural (a fixed base colour and a fixed 8 x 8 pattern per type, plus per-instance pixel noise),
and the five tile costs are the five values of the Warcraft data set's cost maps (0.8, 1.2, 5.3, 7.7, 9.2).
"""

from __future__ import annotations

import numpy as np

#: Terrain types and their tile costs (the values found in the Warcraft data set's cost maps).
TERRAIN = ("road", "grass", "forest", "hills", "water")
TERRAIN_COST = np.array([0.8, 1.2, 5.3, 7.7, 9.2])
#: How often each type is drawn for a region.
TERRAIN_WEIGHT = np.array([0.15, 0.35, 0.25, 0.15, 0.10])
#: Pixels per tile side (the Warcraft images: 8 x 8 pixels per tile).
TILE_PIXELS = 8
_BASE_COLOUR = np.array([[150, 120, 80], [80, 160, 60], [30, 90, 40], [140, 130, 120], [40, 80, 190]], float)


def textures(seed: int = 2023) -> np.ndarray:
    """One fixed 8 x 8 RGB texture per terrain type, (types, 8, 8, 3) float in [0, 255]."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(TERRAIN), TILE_PIXELS, TILE_PIXELS, 3))
    for t, base in enumerate(_BASE_COLOUR):
        pattern = rng.normal(0.0, 25.0, size=(TILE_PIXELS, TILE_PIXELS, 1))
        stripes = 20.0 * np.sin(np.arange(TILE_PIXELS) * (t + 1) * 0.9)[:, None, None]
        out[t] = np.clip(base + pattern + (stripes if t % 2 else stripes.transpose(1, 0, 2)), 0, 255)
    return out


def sample_terrain(rng: np.random.Generator, k: int, region_size: float = 6.0) -> np.ndarray:
    """A k x k map of terrain type indices: a Voronoi partition into about ``k^2 / region_size`` regions."""
    n_regions = max(2, int(round(k * k / region_size)))
    seeds = rng.uniform(0, k, size=(n_regions, 2))
    kinds = rng.choice(len(TERRAIN), size=n_regions, p=TERRAIN_WEIGHT)
    rows, cols = np.meshgrid(np.arange(k) + 0.5, np.arange(k) + 0.5, indexing="ij")
    d = (rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2
    return kinds[np.argmin(d, axis=-1)]


def render(terrain: np.ndarray, rng: np.random.Generator, noise: float = 8.0, tex: np.ndarray | None = None
           ) -> np.ndarray:
    """The RGB image (k*8, k*8, 3) uint8 of a terrain map: each tile its type's texture plus pixel noise."""
    tex = textures() if tex is None else tex
    k = terrain.shape[0]
    img = tex[terrain].transpose(0, 2, 1, 3, 4).reshape(k * TILE_PIXELS, k * TILE_PIXELS, 3)
    img = img + rng.normal(0.0, noise, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
