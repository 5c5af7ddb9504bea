"""Where the tiles of a pass lie, and the weights that blend their overlaps.

Along each side of the image the tiles are evenly spread, all of one size, the fewest whose
neighbours overlap by at least `overlap(tile)`: every tile of a pass has the same shape, so one
session (or one set of artifacts) serves them all. In the overlap of two neighbours the outer
`margin` of each counts for nothing (a tile's own border sees the zero padding of the network's
convolutions, which the whole image would not show there), and across the rest a raised cosine
hands one over to the other; the two weights sum to one, so a flat region stays flat.

A seam (the middle of an overlap) that falls within `overlap` of one of the previous tiled pass's,
scaled to this size, moves: the side takes one tile more, which shifts every seam along it. So a
seam left by one pass is repainted inside a tile by the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nst_ort.config import StylizeConfig, pass_sizes
from nst_ort.imageio import Box, fit_longest

MIN_OVERLAP = 16  # px
OVERLAP_SHARE = 8  # the overlap is at least 1/8 of the tile's side
MARGIN_SHARE = 4  # a quarter of the overlap at each tile's inner border has no weight
MORE_TILES = 3  # how many more tiles a side may take to move its seams


def overlap(tile: int) -> int:
    """The least overlap of two neighbouring tiles of at most `tile` px."""
    return max(MIN_OVERLAP, tile // OVERLAP_SHARE)


@dataclass(frozen=True)
class Tile:
    index: int  # row-major in its grid
    top: int
    left: int
    height: int
    width: int

    def box(self, height: int, width: int, source: tuple[int, int]) -> Box:
        """This tile's region in an image of `source` (height, width) that spans the same picture
        as the grid's height x width (imageio.resize's box)."""
        sy, sx = source[0] / height, source[1] / width
        return (self.left * sx, self.top * sy, (self.left + self.width) * sx, (self.top + self.height) * sy)

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Grid:
    """The tiles of one pass at height x width: rows start at `tops`, columns at `lefts`."""

    height: int
    width: int
    tile_height: int
    tile_width: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    margin: int

    @property
    def tiles(self) -> list[Tile]:
        return [
            Tile(i * len(self.lefts) + j, top, left, self.tile_height, self.tile_width)
            for i, top in enumerate(self.tops)
            for j, left in enumerate(self.lefts)
        ]

    @property
    def count(self) -> int:
        return len(self.tops) * len(self.lefts)

    def weights(self, tile: Tile) -> np.ndarray:
        """(tile height, tile width) float32 blending weights of `tile`."""
        row, col = divmod(tile.index, len(self.lefts))
        wy = axis_weights(self.tops, self.tile_height, row, self.margin)
        wx = axis_weights(self.lefts, self.tile_width, col, self.margin)
        return np.outer(wy, wx).astype(np.float32)

    def seams(self) -> tuple[list[float], list[float]]:
        """The middles of the overlaps, down and across."""
        return seams(self.tops, self.tile_height), seams(self.lefts, self.tile_width)

    def as_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "tile_height": self.tile_height,
            "tile_width": self.tile_width,
            "tops": list(self.tops),
            "lefts": list(self.lefts),
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        return cls(**{**data, "tops": tuple(data["tops"]), "lefts": tuple(data["lefts"])})


def rising(length: int) -> np.ndarray:
    """A raised cosine from near 0 to near 1 over `length` pixels (at pixel centres)."""
    return 0.5 - 0.5 * np.cos(math.pi * (np.arange(length) + 0.5) / length)


def axis_weights(starts: tuple[int, ...], side: int, i: int, margin: int) -> np.ndarray:
    """The weights along one side of tile `i` of tiles of `side` px starting at `starts`."""
    weights = np.ones(side)
    first = starts[i]
    if i > 0:  # the overlap with the tile before: rise after the margin
        low, high = starts[i] + margin - first, starts[i - 1] + side - margin - first
        weights[:low] = 0.0
        weights[low:high] *= rising(high - low)
    if i < len(starts) - 1:  # the overlap with the tile after: the complement of its rise
        low, high = starts[i + 1] + margin - first, starts[i] + side - margin - first
        weights[low:high] *= 1.0 - rising(high - low)
        weights[high:] = 0.0
    return weights


def seams(starts: tuple[int, ...], side: int) -> list[float]:
    return [(starts[i + 1] + starts[i] + side) / 2 for i in range(len(starts) - 1)]


def spread(length: int, count: int, least: int) -> tuple[int, tuple[int, ...]]:
    """`count` tiles over `length` px, overlapping by at least `least`: their side and starts."""
    if count == 1:
        return length, (0,)
    side = math.ceil((length + (count - 1) * least) / count)
    return side, tuple(round(i * (length - side) / (count - 1)) for i in range(count))


def plan_axis(length: int, limit: int, least: int, avoid: list[float]) -> tuple[int, tuple[int, ...]]:
    """Tiles of at most `limit` px along one side: the fewest, or a few more to keep their seams
    `least` px away from those in `avoid` (the best found when none is that far)."""
    if length <= limit:
        return length, (0,)
    fewest = math.ceil((length - least) / (limit - least))
    best = None
    for count in range(fewest, fewest + MORE_TILES + 1):
        side, starts = spread(length, count, least)
        if count > fewest and side - (starts[1] - starts[0]) > starts[1] - starts[0]:
            break  # three tiles would overlap: no more
        distance = min((abs(s - a) for s in seams(starts, side) for a in avoid), default=math.inf)
        if distance >= least:
            return side, starts
        if best is None or distance > best[0]:
            best = (distance, side, starts)
    return best[1], best[2]


def plan_grid(height: int, width: int, tile: int, previous: Grid | None = None) -> Grid:
    """The grid of tiles of at most `tile` x `tile` px over a height x width pass."""
    least = overlap(tile)
    avoid_y, avoid_x = ([], []) if previous is None else previous.seams()
    tile_height, tops = plan_axis(height, tile, least, [y * height / previous.height for y in avoid_y])
    tile_width, lefts = plan_axis(width, tile, least, [x * width / previous.width for x in avoid_x])
    return Grid(height, width, tile_height, tile_width, tops, lefts, least // MARGIN_SHARE)


def tiled(config: StylizeConfig, height: int, width: int) -> bool:
    """Whether a pass at height x width runs in tiles: it has more pixels than one tile."""
    return bool(config.tile) and height * width > config.tile**2


def pass_grids(config: StylizeConfig, frame: tuple[int, int]) -> list[Grid | None]:
    """Each pass's grid (None: it runs whole); each tiled pass's seams avoid the previous one's."""
    grids: list[Grid | None] = []
    for size in pass_sizes(config):
        height, width = fit_longest(*frame, size)
        previous = grids[-1] if grids else None
        whole = not tiled(config, height, width)
        grids.append(None if whole else plan_grid(height, width, config.tile, previous))
    return grids
