"""Colour preservation: the luminance transfer keeps the content's chroma, histogram matching
gives the style the content's colour statistics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nst_ort import PreserveColors, StylizeConfig, stylize
from nst_ort.colors import color_transfer, match_histogram, rgb_to_yiq, yiq_to_rgb
from nst_ort.config import InitKind, Optimizer
from nst_ort.imageio import load_image, resize


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
