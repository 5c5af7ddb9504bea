"""Targets and the loss weights that make each term relative to its target, against numpy."""

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.engine import Engine
from nst_ort.targets import TargetComputer, directions, normalized_loss, style_for_run

H, W = 40, 56


@pytest.fixture(scope="module")
def engine(tiny_model):
    # float32: the terms are compared with numpy's to 1e-4, which bf16 evaluations (what `auto`
    # runs on some CPUs) do not hold
    return Engine(tiny_model, "cpu", threads=2, backend="ort-graph")


def images(seed):
    rng = np.random.default_rng(seed)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(3)]


def gram(features):
    f = features.reshape(features.shape[1], -1).astype(np.float64)
    return f @ f.T / f.shape[1]


@pytest.mark.parametrize("normalize", [True, False])
def test_the_terms_are_relative_errors_when_normalized(engine, normalize):
    spec = LossSpec(
        content_layers={"relu2_2": 1.0, "relu4_2": 0.5},
        style_layers={"relu1_1": 0.3, "relu3_1": 0.7},
        content_weight=2.0,
        style_weight=5.0,
        tv_weight=3.0,
        tv_chroma=4.0,
        normalize=normalize,
    )
    content, style, image = images(0)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (H, W))
    objective = engine.gradient.prepare(spec, targets.frozen, H, W).objective
    actual, _ = objective.value_and_grad(image.transpose(2, 0, 1)[None])

    # The same terms in numpy, from the features of the three images (every layer's taken as a
    # content layer, so the Grams are computed here and not by the graph).
    layers = {**spec.content_layers, **spec.style_layers}
    computer = TargetComputer(engine.model, LossSpec(content_layers=layers, style_layers={}), "cpu", 2)
    x, c, s = (computer.features(i) for i in (image, content, style))
    content_term = style_term = 0.0
    for layer, w in spec.content_layers.items():
        f, p = (d[contract.content_features(layer)].astype(np.float64) for d in (x, c))
        term = 0.5 * np.sum((f - p) ** 2)
        content_term += w * (term / (0.5 * np.sum(p**2)) if normalize else term)
    for layer, w in spec.style_layers.items():
        g, a = (gram(d[contract.content_features(layer)]) for d in (x, s))
        n = a.shape[0]
        term = np.sum((g - a) ** 2) / (4 * n * n)
        style_term += w * (term / (np.sum(a**2) / (4 * n * n)) if normalize else term)
    # Each neighbour difference's grey part (its channel mean) counted once, its colour part 4 times.
    tv = 0.0
    for d in (np.diff(image, axis=0), np.diff(image, axis=1)):
        grey = np.broadcast_to(d.mean(axis=2, keepdims=True), d.shape)
        tv += np.sum(grey**2) + 4.0 * np.sum((d - grey) ** 2)
    tv_term = tv / (H * W) if normalize else tv
    desired = 2.0 * content_term + 5.0 * style_term + 3.0 * tv_term
    assert actual[contract.LOSS] == pytest.approx(desired, rel=1e-4)
    assert actual[contract.LOSS_CONTENT] == pytest.approx(content_term, rel=1e-4)
    assert actual[contract.LOSS_STYLE] == pytest.approx(style_term, rel=1e-4)


def test_a_target_of_zeros_keeps_its_term_as_it_is():
    spec = LossSpec(content_layers={"relu1_2": 1.0}, style_layers={"relu1_1": 0.5})
    values = {
        contract.content_target("relu1_2"): np.zeros((1, 64, 4, 4), np.float32),
        contract.style_target("relu1_1"): np.full((64, 64), 2.0, np.float32),
    }
    actual = normalized_loss(spec, values, 8, 8)
    assert actual.content_layers == {"relu1_2": 1.0}
    assert actual.style_layers["relu1_1"] == pytest.approx(0.5 * 4 * 64**2 / (4.0 * 64 * 64))
    assert actual.tv_weight == pytest.approx(spec.tv_weight / 64)


def test_sliced_terms_are_relative_transport_costs_along_orthonormal_directions(engine):
    """The sliced term against numpy's exact sliced Wasserstein pairing (a sort), normalised by
    the style's mean squared projection. The histogram's approximation is what the tolerance
    allows; the image is darker than the style, so that the cost is the distributions' distance
    and not the approximation's own (relu1_1's histogram counts a quarter of its positions)."""
    spec = LossSpec(
        content_layers={}, style_layers={"relu1_1": 0.3, "relu3_1": 0.7}, tv_weight=0.0, style_loss="sliced"
    )
    _, style, image = images(1)
    image = image * 0.3
    targets = engine.targets(spec, None, [style], [1.0], 1.0, (H, W))
    objective = engine.gradient.prepare(spec, targets.frozen, H, W).objective
    actual, _ = objective.value_and_grad(image.transpose(2, 0, 1)[None])

    computer = TargetComputer(
        engine.model, LossSpec(content_layers=spec.style_layers, style_layers={}), "cpu", 2
    )
    x, s = (computer.features(i) for i in (image, style))
    desired = 0.0
    for layer, w in spec.style_layers.items():
        d = targets.values[contract.style_directions(layer)].astype(np.float64)
        np.testing.assert_allclose(d @ d.T, np.eye(len(d)), atol=1e-5)
        p, t = (d @ f[contract.content_features(layer)].reshape(len(d), -1) for f in (x, s))
        m = t.shape[1]
        quantiles = np.sort(t, axis=1)[
            :, ((np.arange(contract.QUANTILES) + 0.5) * m / contract.QUANTILES).astype(int)
        ]
        np.testing.assert_allclose(
            targets.values[contract.style_quantile_target(layer)], quantiles, rtol=1e-4, atol=1e-4
        )
        ranks = (np.argsort(np.argsort(p, axis=1), axis=1) + 0.5) / p.shape[1]
        grid = (np.arange(contract.QUANTILES) + 0.5) / contract.QUANTILES
        matched = np.stack([np.interp(r, grid, q) for r, q in zip(ranks, quantiles, strict=True)])
        term = np.sum((p - matched) ** 2) / p.shape[1]
        desired += w * term / (np.sum(quantiles**2) / contract.QUANTILES)
    assert actual[contract.LOSS_STYLE] == pytest.approx(desired, rel=0.05)
    assert actual[contract.LOSS] == pytest.approx(spec.style_weight * desired, rel=0.05)


def test_sliced_directions_change_with_the_pass_and_repeat_for_it():
    spec = LossSpec(style_loss="sliced")
    first, again, other = directions(spec, (64, 48)), directions(spec, (64, 48)), directions(spec, (90, 68))
    for name, value in first.items():
        np.testing.assert_array_equal(value, again[name])
        assert not np.allclose(value, other[name])


def test_style_for_run_is_the_last_pass_size_blurred_by_sigma():
    """One bright pixel in a flat field: the blur's spread around it, in numpy, is σ² per axis;
    the image comes at the longest side the last pass uses (style_scale x size)."""
    style = np.random.default_rng(0).random((120, 90, 3), dtype=np.float32)
    assert style_for_run(style, 40, 1.5, 0.0) is style  # no blur: as before, resized per pass
    assert style_for_run(style, 40, 1.0, 1.0).shape == (40, 30, 3)
    flat = np.full((120, 90, 3), 0.25, np.float32)
    np.testing.assert_allclose(style_for_run(flat, 40, 1.5, 2.0), 0.25, atol=1e-6)
    spot = np.zeros((60, 45, 3), np.float32)
    spot[30, 22] = 1.0
    blurred = style_for_run(spot, 40, 1.5, 2.0)[..., 0].astype(np.float64)
    assert blurred.shape == (60, 45)  # 1.5 x 40 = 60 px: already the last pass's size
    mass = blurred.sum()
    assert mass == pytest.approx(1.0, rel=1e-3)
    rows, cols = np.indices(blurred.shape)
    for axis, centre in ((rows, 30), (cols, 22)):
        actual = float(((axis - centre) ** 2 * blurred).sum() / mass)
        assert actual == pytest.approx(4.0, rel=0.05)  # σ = 2 px
    # Smaller than the last pass's side: its own size, σ in its pixels scaled to the same blur.
    small = style_for_run(spot, 60, 1.5, 2.0)[..., 0].astype(np.float64)
    assert small.shape == (60, 45)
    actual = float(((rows - 30) ** 2 * small).sum() / small.sum())
    assert actual == pytest.approx((2.0 * 60 / 90) ** 2, rel=0.05)
