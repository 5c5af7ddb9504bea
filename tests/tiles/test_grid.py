"""Where tiles lie and how they blend: cover, one shape, weights summing to one, moving seams."""

from __future__ import annotations

import numpy as np
import pytest

from nst_ort.config import StylizeConfig
from nst_ort.tiles.grid import overlap, pass_grids, plan_grid, tiled


def blended_weight(grid) -> np.ndarray:
    total = np.zeros((grid.height, grid.width))
    for tile in grid.tiles:
        total[tile.slices] += grid.weights(tile)
    return total


@pytest.mark.parametrize(
    ("height", "width", "tile"),
    [(72, 96, 48), (48, 96, 64), (3072, 4096, 1360), (1086, 1448, 1424), (100, 33, 32), (768, 1024, 1024)],
)
def test_tiles_cover_the_image_with_one_shape_and_weights_that_sum_to_one(height, width, tile):
    grid = plan_grid(height, width, tile)
    assert grid.tile_height <= tile and grid.tile_width <= tile
    assert grid.tops[0] == 0 and grid.tops[-1] + grid.tile_height == height
    assert grid.lefts[0] == 0 and grid.lefts[-1] + grid.tile_width == width
    for starts, side in ((grid.tops, grid.tile_height), (grid.lefts, grid.tile_width)):
        overlaps = [a + side - b for a, b in zip(starts, starts[1:], strict=False)]
        assert all(o >= overlap(tile) for o in overlaps), overlaps
    np.testing.assert_allclose(blended_weight(grid), 1.0, rtol=0, atol=1e-6)
    for tile_ in grid.tiles:  # a tile's own border within the image counts for nothing
        weights = grid.weights(tile_)
        assert weights.shape == (grid.tile_height, grid.tile_width) and weights.min() >= 0
        if tile_.left > 0:
            assert weights[:, : grid.margin].max() == 0
        if tile_.left + tile_.width < width:
            assert weights[:, -grid.margin :].max() == 0


def test_weights_rise_smoothly_across_an_overlap():
    grid = plan_grid(48, 96, 64)
    assert grid.count == 2
    across = grid.weights(grid.tiles[1])[0]
    steps = np.diff(across)
    assert steps.min() >= 0 and steps.max() < 0.2  # no jump: a ramp over the overlap


def test_the_largest_fewest_tiles_and_the_whole_image_rule():
    config = StylizeConfig(size=96, tile=48)
    assert tiled(config, 72, 96) and not tiled(config, 48, 48) and not tiled(config, 24, 96)
    assert not tiled(StylizeConfig(size=96), 4096, 4096)  # tile 0: resolved before any pass
    grid = plan_grid(3072, 4096, 1360)
    assert (len(grid.tops), len(grid.lefts)) == (3, 4)


def test_a_seam_moves_away_from_the_previous_pass_seams():
    previous = plan_grid(1086, 1448, 1424)  # two columns: the seam in the middle
    assert previous.seams() == ([], [724.0])
    fewest = plan_grid(1536, 2048, 1424)  # alone it would cut the middle too
    assert fewest.seams()[1] == [1024.0]
    grid = plan_grid(1536, 2048, 1424, previous)
    scaled = 724.0 * 2048 / 1448
    assert min(abs(s - scaled) for s in grid.seams()[1]) >= overlap(1424)
    assert grid.tile_width <= 1424 and len(grid.lefts) == 3


def test_pass_grids_follow_the_ladder():
    config = StylizeConfig(size=96, scales=(48,), tile=48)
    grids = pass_grids(config, (72, 96))
    assert grids[0] is None  # 36 x 48: fewer pixels than a tile
    assert grids[1] is not None and grids[1].count == 6
    assert pass_grids(StylizeConfig(size=96, scales=(48,)), (72, 96)) == [None, None]
