"""Artifact scores of a stylised image: fine structure its own spectrum does not predict.

The artifact they measure is the grid that optimising an image through a VGG's pooling layers
can leave over flat regions: a checkerboard of a few pixels' period, often coloured, or a weave
of 5–8 px. Measured on such pictures it is rarely one sharp spectral peak; it is an excess of
power over the fine periods, in one colour channel or more, where a photograph or a painting has
less power the finer the period. Two numbers, both from Welch's power spectrum (Hann-windowed
tiles of 64 px with half overlap, averaged: independent of the image size, and no single edge
or cable dominates):

- `artifact_score`: per RGB channel, the power at periods of 2–7 px against a power law fitted to
  the same channel at periods of 8–32 px (the mean ratio), the worst channel. Below 1 the fine
  scales fall off, as in photographs and clean paintings (neural-style's published results for
  the shared pairs score 0.43–0.84); well above 1, excess fine structure (a grid, a weave,
  speckle). A grid at a period of 8–16 px falls in the fitted band and is not seen here:
- `peak_ratio`: the strongest narrow peak at periods of 2–16 px, against its neighbours two bins
  away in every direction (a line through the spectrum from an edge is not a peak). About 1.3–1.9
  for clean pictures; an exact periodic grid stands out far above.
"""

from __future__ import annotations

import numpy as np

TILE = 64  # px; ring r of the tile's spectrum holds periods of about TILE / r px
FIT_RINGS = (2, 8)  # periods of 32 down to 8 px
FINE_RINGS = (9, 32)  # periods of 7.1 down to 2 px
PEAK_MIN_RING = 4  # narrow peaks at periods of 16 px and finer
FLOOR = 1e-20  # keeps a flat channel finite (it scores 1)


def _check(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (height, width, 3) RGB image, got shape {image.shape}")
    if min(image.shape[:2]) < TILE:
        raise ValueError(f"an artifact score needs at least {TILE} px per side, got {image.shape[:2]}")
    return image


def power_spectrum(channel: np.ndarray) -> np.ndarray:
    """Welch's estimate for one channel: Hann-windowed TILE x TILE tiles, half overlap, averaged.

    Unshifted: bin (i, j) is the frequency (i, j) / TILE cycles per pixel, modulo TILE.
    """
    step = TILE // 2
    height, width = channel.shape
    tiles = np.stack(
        [
            channel[i : i + TILE, j : j + TILE]
            for i in range(0, height - TILE + 1, step)
            for j in range(0, width - TILE + 1, step)
        ]
    )
    window = np.outer(np.hanning(TILE), np.hanning(TILE))
    tiles = (tiles - tiles.mean(axis=(1, 2), keepdims=True)) * window
    return (np.abs(np.fft.fft2(tiles)) ** 2).mean(axis=0)


def rings() -> np.ndarray:
    """Each bin's ring: max(|ky|, |kx|) in cycles per tile (square rings, as pixel grids are)."""
    k = np.abs(np.fft.fftfreq(TILE) * TILE).astype(int)
    return np.maximum(k[:, None], k[None, :])


def ring_profile(channel: np.ndarray) -> np.ndarray:
    """Mean power of each ring, 0 … TILE/2."""
    power, ring = power_spectrum(channel), rings()
    return np.array([power[ring == r].mean() for r in range(TILE // 2 + 1)])


def fine_excess(channel: np.ndarray) -> float:
    """Mean ratio of the power at periods of 2–7 px to a power law fitted at 8–32 px."""
    profile = np.maximum(ring_profile(channel), FLOOR)
    radius = np.arange(len(profile), dtype=np.float64)
    fit = slice(FIT_RINGS[0], FIT_RINGS[1] + 1)
    fine = slice(FINE_RINGS[0], FINE_RINGS[1] + 1)
    slope, intercept = np.polyfit(np.log(radius[fit]), np.log(profile[fit]), 1)
    predicted = np.exp(intercept + slope * np.log(radius[fine]))
    return float(np.mean(profile[fine] / predicted))


def artifact_score(image: np.ndarray) -> float:
    """The fine-scale excess of an (height, width, 3) RGB image, its worst channel."""
    image = _check(image)
    return max(fine_excess(image[:, :, c]) for c in range(3))


def _neighbour_level(power: np.ndarray, distance: int = 2) -> np.ndarray:
    """Per bin, the highest mean of two opposite neighbours at `distance`, over four directions."""
    levels = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ahead = np.roll(power, (distance * dy, distance * dx), axis=(0, 1))
        behind = np.roll(power, (-distance * dy, -distance * dx), axis=(0, 1))
        levels.append((ahead + behind) / 2)
    return np.max(levels, axis=0)


def peak_ratio(image: np.ndarray) -> float:
    """The strongest narrow peak at periods of 2–16 px over its neighbours, on luminance."""
    image = _check(image)
    luminance = image @ np.array([0.299, 0.587, 0.114])
    power = np.maximum(power_spectrum(luminance), FLOOR)
    band = rings() >= PEAK_MIN_RING
    return float((power / np.maximum(_neighbour_level(power), FLOOR))[band].max())
