"""One tile's work: its loss scaled to its share of the image, and style targets from style tiles
(Grams averaged, a sliced term's quantiles those of the tiles' mixture)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.config import LossSpec, Optimizer
from nst_ort.engine import Engine
from nst_ort.imageio import fit_longest, load_image, resize
from nst_ort.tiles import Tile, TileJob, compute_tile
from nst_ort.tiles.tile import pooled, style_targets


@pytest.fixture(scope="module")
def engine(tiny_model):
    return Engine(tiny_model, threads=1)


def test_a_tile_s_loss_and_steps_are_its_share(engine, make_image):
    # The default terms, weighted up so that every pixel's gradient, a quarter of it too, lies far
    # above Adam's epsilon: where it does not, the step depends on the scale (below).
    base = LossSpec()
    spec = dataclasses.replace(
        base,
        content_weight=1e3 * base.content_weight,
        style_weight=1e3 * base.style_weight,
        tv_weight=1e3 * base.tv_weight,
    )
    content, style = load_image(make_image("c.png", 48, 48)), load_image(make_image("s.png", 48, 48, seed=1))
    targets = engine.style_targets(spec, [style], [1.0], 1.0, (48, 48))

    def run(scale: float, lr: float):
        job = TileJob(
            Tile(0, 0, 0, 48, 48), spec, Optimizer.ADAM, 2, lr, 0.0, 0, scale, content.copy(), None, content
        )
        return compute_tile(engine, job, targets)

    whole, quarter = run(1.0, 0.02), run(0.25, 0.02)
    actual, desired = quarter.records[0].terms, whole.records[0].terms  # both at the start image
    assert actual == pytest.approx({name: 0.25 * value for name, value in desired.items()}, rel=1e-6)
    # Adam's step does not depend on the gradient's scale, but for its epsilon: the two steps of up
    # to 0.02 each move the pixels alike to within 1e-3.
    assert np.abs(whole.image - content).max() > 0.02
    np.testing.assert_allclose(quarter.image, whole.image, rtol=0, atol=1e-3)
    np.testing.assert_allclose(quarter.adam.v, whole.adam.v / 16, rtol=1e-2, atol=1e-20)  # g² / 16


@pytest.mark.parametrize("kind", list(contract.StyleLoss))
def test_style_targets_from_style_tiles_are_near_the_whole_style(engine, make_image, kind):
    spec = LossSpec(content_layers={}, style_layers={"relu1_1": 1.0, "relu3_1": 1.0}, style_loss=kind)
    style = load_image(make_image("s.png", 96, 128, seed=2))
    desired = engine.style_targets(spec, [style], [1.0], 1.0, (96, 128))
    actual = style_targets(engine, spec, [style], [1.0], 1.0, (96, 128), tile=64)  # 2 x 2 tiles
    assert desired.keys() == actual.keys()
    for layer in spec.style_layers:  # the sliced term's directions: the pass's, as the whole's
        key = contract.style_directions(layer)
        assert (key in desired) is (kind is contract.StyleLoss.SLICED)
        assert key not in desired or np.array_equal(actual[key], desired[key])
    for key in desired:
        error = np.linalg.norm(actual[key] - desired[key]) / np.linalg.norm(desired[key])
        assert error < 0.1, (key, error)
    # Each tile alone is further from the whole than their mean.
    h, w = fit_longest(*style.shape[:2], 128)
    corner = resize(style, h // 2, w // 2, (0, 0, style.shape[1] / 2, style.shape[0] / 2))
    alone = engine.style_targets(spec, [corner], [1.0], 1.0, corner.shape[:2])
    for key in desired:
        assert np.linalg.norm(alone[key] - desired[key]) > np.linalg.norm(actual[key] - desired[key])
    # A style that fits one tile is what an untiled run uses, exactly.
    whole = style_targets(engine, spec, [style], [1.0], 1.0, (96, 128), tile=128)
    assert all(np.array_equal(whole[key], desired[key]) for key in desired)


def quantiles(samples: np.ndarray, count: int) -> np.ndarray:
    """numpy's quantiles of each row at the levels (j + 1/2) / count."""
    return np.quantile(samples, (np.arange(count) + 0.5) / count, axis=-1, method="inverted_cdf").T


def test_pooled_targets_average_grams_and_mix_quantiles():
    rng = np.random.default_rng(0)
    spec = LossSpec(content_layers={}, style_layers={"relu1_1": 1.0})
    gram, quantile = contract.style_target("relu1_1"), contract.style_quantile_target("relu1_1")
    # Two tiles of one style: 3000 and 1000 positions of 2 channels, distributed unlike each other.
    big = rng.normal(0.0, 1.0, (2, 3000)).astype(np.float32)
    small = rng.normal(3.0, 0.5, (2, 1000)).astype(np.float32)
    count = 256

    def targets(features):
        return {gram: features @ features.T / features.shape[1], quantile: quantiles(features, count)}

    actual = pooled(spec, [(0.75, targets(big)), (0.25, targets(small))])
    desired = targets(np.concatenate([big, small], axis=1))
    np.testing.assert_allclose(actual[gram], desired[gram], rtol=1e-5)
    # The mixture's quantiles, to within the tiles' quantiles' resolution: the share of all the
    # positions below each is its level to within 1/count...
    both = np.sort(np.concatenate([big, small], axis=1), axis=1)
    levels = (np.arange(count) + 0.5) / count

    def error(values):
        below = np.stack([np.searchsorted(row, v, side="right") for row, v in zip(both, values, strict=True)])
        return np.abs(below / both.shape[1] - levels).max()

    assert actual[quantile].shape == (2, count) and error(actual[quantile]) < 1 / count
    # ...where the mean of the tiles' quantiles is far off.
    mean = 0.75 * targets(big)[quantile] + 0.25 * targets(small)[quantile]
    assert error(mean) > 0.1
    # One tile gives its own targets back.
    alone = targets(small)
    assert np.array_equal(pooled(spec, [(1.0, alone)])[quantile], alone[quantile])
