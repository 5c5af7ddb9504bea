"""Passes larger than memory allows, in overlapping tiles.

Coarse to fine runs whole passes up to the largest that fits; a pass with more pixels than a
`tile` x `tile` square (StylizeConfig.tile, chosen from the memory available when 0: budget.py)
runs in tiles instead (runner.py): each tile starts from the previous pass's result and Adam
state cut to it, is optimised against the style targets of the whole pass (computed once, for
the pass's full size) and the content targets of its own crop (tile.py), and the tiles are
blended with raised-cosine weights across their overlaps into the pass's image and moments
(grid.py). The grid moves between passes so that no seam sits where the previous pass's did.
"""

from nst_ort.tiles.budget import resolve
from nst_ort.tiles.grid import Grid, Tile, pass_grids, plan_grid, tiled
from nst_ort.tiles.runner import Here, Resumed, TiledPassInfo, TiledStart, TileEvent, Tiling, run_pass
from nst_ort.tiles.tile import TileJob, TileResult, compute_tile

__all__ = [
    "Grid",
    "Here",
    "Resumed",
    "Tile",
    "TileEvent",
    "TileJob",
    "TileResult",
    "TiledPassInfo",
    "TiledStart",
    "Tiling",
    "compute_tile",
    "pass_grids",
    "plan_grid",
    "resolve",
    "run_pass",
    "tiled",
]
