"""The artifact scores on synthetic pictures: clean ones score low, faint grids clearly higher."""

import numpy as np
import pytest

from nst_ort import quality


def natural(height: int, width: int, seed: int) -> np.ndarray:
    """A clean stand-in for a photograph: a random field whose power falls as 1/f³ (photographs
    fall about so at fine scales), in 8 bits like a saved picture."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    noise = rng.normal(size=(3, height, width)) + 1j * rng.normal(size=(3, height, width))
    field = np.real(np.fft.ifft2(noise / f**1.5, axes=(1, 2)))
    field = (field - field.mean(axis=(1, 2), keepdims=True)) / field.std(axis=(1, 2), keepdims=True)
    return np.round(np.clip(field.transpose(1, 2, 0) * 0.12 + 0.5, 0, 1) * 255) / 255


def with_grid(image: np.ndarray, pattern: np.ndarray, amplitude: float = 3 / 255) -> np.ndarray:
    return np.clip(image + amplitude * pattern[:, :, None], 0, 1)


def grids(height: int, width: int) -> dict[str, np.ndarray]:
    y, x = np.indices((height, width))
    return {
        "checkerboard 2 px": (y + x) % 2,
        "checkerboard 4 px": (y // 2 + x // 2) % 2,
        "checkerboard 8 px": (y // 4 + x // 4) % 2,
        "weave 6 px": (np.sin(2 * np.pi * x / 6) * np.sin(2 * np.pi * y / 6) + 1) / 2,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pixel_checkerboard_raises_the_fine_scale_score(seed):
    clean = natural(128, 160, seed)
    gridded = with_grid(clean, grids(128, 160)["checkerboard 2 px"])
    actual, desired_below = quality.artifact_score(gridded), quality.artifact_score(clean)
    # 3/255 is faint (a checkerboard one level of 8 bits above the other in most viewers'
    # eyes), yet it about doubles the fine band's power over the fitted law.
    assert actual > 1.5 * desired_below


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "name", ["checkerboard 2 px", "checkerboard 4 px", "checkerboard 8 px", "weave 6 px"]
)
def test_an_exact_grid_is_a_narrow_peak(seed, name):
    clean = natural(128, 160, seed)
    gridded = with_grid(clean, grids(128, 160)[name])
    assert quality.peak_ratio(clean) < 3.0
    assert quality.peak_ratio(gridded) > 4.0


def test_fine_excess_is_one_for_a_power_law_and_below_for_a_blurred_one():
    rng = np.random.default_rng(0)
    size = 256
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
    f[0, 0] = 1.0
    field = np.real(np.fft.ifft2((rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f))
    # Power ∝ 1/f²: the fitted law extends into the fine band, so the ratio is about 1 (Welch's
    # window leaks a little power from coarse to fine bins: 1.16 for this field).
    assert 0.85 < quality.fine_excess(field) < 1.3
    blurred = np.real(np.fft.ifft2(np.fft.fft2(field) * np.exp(-((f * 12) ** 2))))
    assert quality.fine_excess(blurred) < 0.5


def test_flat_and_noise_images_are_finite():
    flat = np.full((64, 64, 3), 0.5)
    noise = np.random.default_rng(0).random((256, 256, 3))
    assert quality.artifact_score(flat) == pytest.approx(1.0)
    assert np.isfinite(quality.peak_ratio(flat))
    # White noise has the same power at every period: as much fine power as the law predicts.
    # (On this size the fit's own scatter moves it by about ±0.1.)
    assert quality.artifact_score(noise) == pytest.approx(1.0, abs=0.2)


def test_small_or_grey_arrays_are_refused():
    with pytest.raises(ValueError, match="at least 64 px"):
        quality.artifact_score(np.zeros((63, 100, 3)))
    with pytest.raises(ValueError, match="RGB"):
        quality.peak_ratio(np.zeros((100, 100)))
