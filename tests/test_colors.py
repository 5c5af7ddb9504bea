"""Colour preservation: the luminance transfer keeps the content's chroma, histogram matching
gives the style the content's colour statistics; the painting's colours: the colour map moves a
picture's colour distribution onto the painting's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nst_ort import PreserveColors, StylizeConfig, colors, stylize
from nst_ort.colors import (
    color_transfer,
    fit_color_map,
    match_histogram,
    palette,
    rgb_to_yiq,
    take_palette,
    yiq_to_rgb,
)
from nst_ort.config import InitKind, Optimizer
from nst_ort.imageio import load_image, resize, save_image


def stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False)


def test_yiq_round_trip_and_luminance_weights():
    rng = np.random.default_rng(0)
    image = rng.random((8, 9, 3), dtype=np.float32)
    np.testing.assert_allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-6)
    desired = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
    np.testing.assert_allclose(rgb_to_yiq(image)[..., 0], desired, atol=1e-6)
    grey = np.repeat(image[..., :1], 3, axis=2)
    np.testing.assert_allclose(rgb_to_yiq(grey)[..., 1:], 0.0, atol=1e-6)  # grey has no chroma


def test_color_transfer_gives_the_references_mean_and_covariance():
    rng = np.random.default_rng(1)
    source = rng.random((40, 50, 3)) @ np.array([[0.6, 0.1, 0.0], [0.1, 0.5, 0.1], [0.0, 0.1, 0.4]])
    reference = rng.random((30, 20, 3)) * np.array([0.2, 0.6, 0.9]) + np.array([0.3, 0.1, 0.0])
    a, b = color_transfer(source, reference)
    actual_mean, actual_cov = stats(source.reshape(-1, 3) @ a.T + b)
    desired_mean, desired_cov = stats(reference)
    np.testing.assert_allclose(actual_mean, desired_mean, atol=1e-9)
    # Off by the small regulariser added to the source covariance only.
    np.testing.assert_allclose(actual_cov, desired_cov, atol=1e-4)
    # The symmetric-square-root map adds no rotation: colours scaled by 0.5 map back by 0.5 I.
    a_same, _ = color_transfer(source, source * 0.5)
    np.testing.assert_allclose(a_same, 0.5 * np.eye(3), atol=1e-3)


def test_match_histogram_of_images(make_image):
    # Mid-contrast images, so that the matched colours stay (almost) inside [0, 1].
    content = load_image(make_image("content.png", 64, 80, seed=0)) * np.float32(0.6) + np.float32(0.2)
    style = load_image(make_image("style.png", 48, 48, seed=5)) * np.float32(0.5)
    style += np.float32([0.1, 0.2, 0.4])
    matched = match_histogram(style, content)
    clipped = np.mean((matched <= 0.0) | (matched >= 1.0))
    actual_mean, actual_cov = stats(matched)
    desired_mean, desired_cov = stats(content)
    assert clipped < 0.02
    np.testing.assert_allclose(actual_mean, desired_mean, atol=1e-3)
    np.testing.assert_allclose(actual_cov, desired_cov, atol=1e-3)
    before_mean, _ = stats(style)
    assert np.max(np.abs(before_mean - desired_mean)) > 0.1  # the match did change something


def test_luminance_mode_keeps_the_contents_chroma(tiny_model, make_image):
    content = make_image("content.png", 48, 64, seed=0)
    style = make_image("style.png", 64, 64, seed=3)
    # L-BFGS from noise moves the luminance far in ten iterations, and keeps most pixels inside
    # the RGB cube once the content's chroma is put back.
    config = StylizeConfig(
        model=tiny_model,
        init=InitKind.NOISE,
        size=64,
        iterations=10,
        optimizer=Optimizer.LBFGS,
        min_scale=0,
        preserve_colors=PreserveColors.LUMINANCE,
    )
    result = stylize(content, [style], config)
    content_image = resize(load_image(content), 48, 64)
    actual = rgb_to_yiq(result.image)
    desired = rgb_to_yiq(content_image)
    assert result.image.shape == (48, 64, 3)
    # Chroma (I, Q) is the content's except where recombining left the RGB cube and was clipped.
    inside = np.all((result.image > 0.0) & (result.image < 1.0), axis=2)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(actual[inside][:, 1:], desired[inside][:, 1:], atol=1e-5)
    # The luminance is the optimised one, not the content's.
    assert np.mean(np.abs(actual[..., 0] - desired[..., 0])) > 0.02


def test_histogram_mode_is_stylize_with_the_matched_style(tiny_model, make_image):
    content = load_image(make_image("content.png", 48, 64, seed=0))
    style = load_image(make_image("style.png", 64, 64, seed=3))
    # No style blur: blurring and the colour match commute only up to rounding and clipping.
    config = StylizeConfig(model=tiny_model, size=64, iterations=5, style_blur=0.0)
    matched = stylize(content, [match_histogram(style, content)], config)
    actual = stylize(
        content,
        [style],
        replace(config, preserve_colors=PreserveColors.HISTOGRAM),
    )
    plain = stylize(content, [style], config)
    np.testing.assert_array_equal(actual.image, matched.image)
    assert np.max(np.abs(actual.image - plain.image)) > 1e-3


def sliced_distance(actual: np.ndarray, desired: np.ndarray, directions: int = 32) -> float:
    """Mean over fixed random directions of the RMS gap between the two colour distributions'
    quantiles along each (a sliced Wasserstein-2 distance), numpy's quantiles, no colour map."""
    rng = np.random.default_rng(123)
    vectors = rng.normal(size=(directions, 3))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    levels = np.linspace(0.0, 1.0, 101)
    a, b = np.reshape(actual, (-1, 3)), np.reshape(desired, (-1, 3))
    gaps = [np.quantile(a @ v, levels) - np.quantile(b @ v, levels) for v in vectors]
    return float(np.mean([np.sqrt(np.mean(g**2)) for g in gaps]))


def two_colours(rng: np.random.Generator, shape: tuple[int, int], dark_share: float) -> np.ndarray:
    """A painting of two colours, dark blue and light orange, with a little noise."""
    dark = rng.random(shape) < dark_share
    image = np.where(dark[..., None], [0.1, 0.15, 0.4], [0.95, 0.6, 0.2])
    return np.clip(image + rng.normal(0, 0.02, shape + (3,)), 0, 1)


def test_color_map_gives_the_references_whole_distribution():
    rng = np.random.default_rng(2)
    source = rng.random((60, 70, 3)) * [0.5, 0.7, 0.6] + [0.3, 0.1, 0.2]
    reference = two_colours(rng, (50, 40), dark_share=0.3)
    before = sliced_distance(source, reference)
    actual = fit_color_map(source, reference)(source)
    a, b = color_transfer(source, reference)
    by_moments = np.clip(source.reshape(-1, 3) @ a.T + b, 0, 1)
    assert actual.shape == source.shape and actual.dtype == np.float32
    # A mean and covariance cannot make two colours out of a box of them; the map does.
    assert sliced_distance(actual, reference) < 0.05 * before
    assert sliced_distance(by_moments, reference) > 0.25 * before
    actual_mean, _ = stats(actual)
    desired_mean, _ = stats(reference)
    np.testing.assert_allclose(actual_mean, desired_mean, atol=0.01)
    near_dark = np.linalg.norm(actual - [0.1, 0.15, 0.4], axis=-1) < 0.15
    assert near_dark.mean() == pytest.approx(0.3, abs=0.03)


def test_color_map_keeps_dark_dark_and_light_light():
    rng = np.random.default_rng(3)
    ramp = np.repeat(np.linspace(0.0, 1.0, 80)[None, :, None], 3, axis=2).repeat(20, axis=0)
    reference = two_colours(rng, (40, 40), dark_share=0.5)
    actual = fit_color_map(ramp, reference)(ramp)
    # The darker half of the grey ramp becomes the dark blue, the lighter half the orange.
    np.testing.assert_allclose(actual[:, :30].mean(axis=(0, 1)), [0.1, 0.15, 0.4], atol=0.06)
    np.testing.assert_allclose(actual[:, 50:].mean(axis=(0, 1)), [0.95, 0.6, 0.2], atol=0.06)


def test_the_map_fitted_on_a_sample_applies_to_the_whole_picture(monkeypatch):
    rng = np.random.default_rng(4)
    picture = rng.random((120, 160, 3)) * [0.6, 0.6, 0.8]
    reference = two_colours(rng, (60, 60), dark_share=0.4)
    colour_map = fit_color_map(picture.reshape(-1, 3)[::7], reference)
    actual = colour_map(picture)
    # A chunk at a time (a large print's way), the last chunk a partial one: the same picture.
    monkeypatch.setattr(colors, "COLOR_MAP_CHUNK", 1000)
    np.testing.assert_array_equal(colour_map(picture), actual)
    # A map of colours: one colour, wherever it is, gets one colour.
    picture[10, 10] = picture[100, 150]
    again = colour_map(picture)
    np.testing.assert_array_equal(again[10, 10], again[100, 150])
    assert sliced_distance(actual, reference) < 0.1 * sliced_distance(picture, reference)


def test_palette_shares_follow_the_blend():
    red = np.tile([1.0, 0.0, 0.0], (30, 30, 1))
    blue = np.tile([0.0, 0.0, 1.0], (40, 20, 1))
    actual = palette([red, blue], [3.0, 1.0], count=400)
    assert actual.shape == (400, 3)
    assert np.sum(actual[:, 0] == 1.0) == 300 and np.sum(actual[:, 2] == 1.0) == 100


def test_painting_mode_gives_the_picture_the_paintings_colours(tiny_model, make_image, tmp_path):
    content = make_image("content.png", 48, 64, seed=0)
    rng = np.random.default_rng(6)
    painting = tmp_path / "painting.png"
    save_image(painting, two_colours(rng, (64, 64), dark_share=0.6).astype(np.float32))
    # No style blur: the map takes the painting as the run sees it, and a blur would mix this
    # painting's pixel-sized patches of its two colours.
    config = StylizeConfig(model=tiny_model, size=64, iterations=5, style_blur=0.0)
    plain = stylize(content, [painting], config)
    actual = stylize(content, [painting], replace(config, preserve_colors=PreserveColors.PAINTING))
    desired = load_image(painting)
    assert actual.image.shape == plain.image.shape == (48, 64, 3)
    assert sliced_distance(actual.image, desired) < 0.2 * sliced_distance(plain.image, desired)
    # The same picture recoloured: the colour map of the plain run's result.
    np.testing.assert_allclose(actual.image, take_palette(plain.image, [desired], [1.0]), atol=1e-6)
