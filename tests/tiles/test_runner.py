"""A pass in tiles: one tile over everything is the untiled pass, two tiles blend without a seam,
and a pass handed its finished tiles back runs only the others, to the same image."""

from __future__ import annotations

import numpy as np
import pytest

from nst_ort import StylizeConfig, stylize
from nst_ort.config import InitKind, Status
from nst_ort.imageio import from_nchw
from nst_ort.passes import optimize_whole, plan
from nst_ort.run import prepare
from nst_ort.tiles import Resumed, Tiling, run_pass
from nst_ort.tiles.runner import Here


@pytest.fixture
def images(make_image):
    """A content of 6 tiles of at most 48 px (2 x 3), or 2 of 64 px, and a style."""
    return make_image("c.png", 72, 96, seed=0), make_image("s.png", 64, 64, seed=3)


def test_one_tile_over_everything_is_the_untiled_pass(tiny_model, make_image):
    content, style = make_image("c.png", 48, 64, seed=0), make_image("s.png", 40, 40, seed=3)
    config = StylizeConfig(model=tiny_model, size=64, scales=(32,), scale_iterations=(3, 3), threads=1)
    run = prepare(config, content, [style])
    first, second = plan(config)
    coarse, _ = optimize_whole(run, first, run.content, run.styles, None, None, 0, 3, None)
    image, adam = from_nchw(coarse.image), coarse.adam
    desired, _ = optimize_whole(run, second, run.content, run.styles, image, adam, 3, 3, None)
    actual, info = run_pass(run, second, run.content, run.styles, image, adam, 3)
    assert actual.status is Status.DONE and info.grid["lefts"] == [0] and len(info.tiles) == 1
    np.testing.assert_array_equal(actual.image, desired.image)
    np.testing.assert_array_equal(actual.adam.m, desired.adam.m)
    np.testing.assert_array_equal(actual.adam.v, desired.adam.v)
    assert actual.adam.t == desired.adam.t == 6
    assert [r.step for r in actual.records] == [4, 5, 6]
    assert [r.terms for r in actual.records] == [r.terms for r in desired.records]


def column_jumps(image: np.ndarray) -> np.ndarray:
    """Mean absolute difference between each column and the next."""
    return np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))


def test_two_tiles_blend_without_a_seam(tiny_model, make_image):
    content, style = make_image("c.png", 48, 96, seed=0), make_image("s.png", 64, 64, seed=3)
    config = StylizeConfig(
        model=tiny_model, size=96, min_scale=0, iterations=20, tile=64, init=InitKind.CONTENT, threads=1
    )
    events = []
    result = stylize(content, [style], config, tiling=Tiling(on_tile=events.append))
    assert result.status is Status.DONE and result.image.shape == (48, 96, 3)
    grid = events[0].grid
    assert (grid.tops, grid.lefts, grid.tile_width) == ((0,), (0, 40), 56)
    left, right = (e.finished.image for e in events if e.finished is not None)
    start, end = grid.lefts[1], grid.lefts[0] + grid.tile_width  # the overlap: columns 40-55
    middle = (start + end) // 2
    # The same two tiles cut at the middle of their overlap: what a seam looks like here.
    cut = result.image.copy()
    cut[:, :middle], cut[:, middle:] = left[:, :middle], right[:, middle - start :]
    actual, hard = column_jumps(result.image), column_jumps(cut)
    elsewhere = np.r_[actual[: start - 1], actual[end:]]
    typical = np.median(elsewhere)
    assert hard[middle - 1] > 3 * typical  # the measure sees a cut
    # Tiles that ran apart (here by about 0.17 per pixel: 20 steps of a random network from the
    # content) cross-fade over the 8 px between the margins, so the blend's steepest column
    # carries about π/16 of their difference; a cut carries all of it. Hence a fourth, not
    # "no larger than anywhere else": that measure passes or fails with how rough the rest is.
    assert actual[start - 1 : end].max() - typical <= (hard[middle - 1] - typical) / 4
    # In the overlap the blend lies between the two tiles.
    overlap = result.image[:, start:end]
    low = np.minimum(left[:, start:end], right[:, : end - start]) - 1e-6
    high = np.maximum(left[:, start:end], right[:, : end - start]) + 1e-6
    assert np.all((low <= overlap) & (overlap <= high))


def test_a_pass_given_its_finished_tiles_runs_only_the_others(tiny_model, images):
    config = StylizeConfig(model=tiny_model, size=96, min_scale=0, iterations=3, tile=48, threads=1)
    events = []
    desired = stylize(images[0], [images[1]], config, tiling=Tiling(on_tile=events.append))
    start = events[0].start
    finished = {e.finished.tile.index: e.finished for e in events if e.finished is not None}
    assert sorted(finished) == list(range(6))

    ran = []

    class Counting(Here):
        def run_tiles(self, engine, config, jobs, count, style, callback, started):
            for result in super().run_tiles(engine, config, jobs, count, style, callback, started):
                ran.append(result.tile.index)
                yield result

    back = {i: (lambda r=finished[i]: r) for i in (0, 1, 4)}
    tiling = Tiling(resumed=Resumed(start, back), runner=Counting())
    actual = stylize(images[0], [images[1]], config, tiling=tiling)
    assert ran == [2, 3, 5]
    np.testing.assert_array_equal(actual.image, desired.image)
    data = actual.report.finish(actual.status, actual.message, None)
    assert [t["resumed"] for t in data["passes"][0]["tiles"]] == [True, True, False, False, True, False]
    assert data["evaluations"] == 3 * 3


def test_an_interrupted_tile_stops_the_pass_with_the_tiles_so_far(tiny_model, images):
    config = StylizeConfig(model=tiny_model, size=96, min_scale=0, iterations=4, tile=48, threads=1)
    tiles_started = []

    def interrupt_the_third(record, image):
        if len(tiles_started) == 3:
            raise KeyboardInterrupt

    def on_tile(event):
        if event.tile is not None:
            tiles_started.append(event.tile.index)

    result = stylize(images[0], [images[1]], config, callback=interrupt_the_third, tiling=Tiling(on_tile))
    assert result.status is Status.INTERRUPTED
    assert result.message == "interrupted at tile 3/6"
    assert result.image.shape == (72, 96, 3) and np.all(np.isfinite(result.image))
    data = result.report.finish(result.status, result.message, None)
    assert [t["index"] for t in data["passes"][0]["tiles"]] == [0, 1]
    assert data["iterations"] == []  # the pass's steps count once it is whole
