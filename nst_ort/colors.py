"""Whose colours the picture has (Gatys, Bethge, Hertzmann & Shechtman 2016, arXiv:1606.05897).

Two ways to keep the content photo's colours: transfer the style on luminance only and put the
content's chroma back (`luminance`), or give the style image the content's colour statistics
before the transfer (`histogram`). And one to take the painting's where the photo's show through
(`painting`): the finished picture's colours moved onto the painting's colour distribution.
Images are float32 RGB in [0, 1], height x width x 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from nst_ort.config import PreserveColors
from nst_ort.imageio import resize

# RGB -> YIQ (FCC NTSC), the colour space the paper uses: Y is luminance, I and Q chroma.
YIQ_FROM_RGB = np.array(
    [
        [0.299, 0.587, 0.114],
        [0.59590059, -0.27455667, -0.32134392],
        [0.21153661, -0.52273617, 0.31119955],
    ],
    np.float64,
)
RGB_FROM_YIQ = np.linalg.inv(YIQ_FROM_RGB)

# Added to the style's covariance before its inverse square root: a grey or flat style image
# has a singular covariance, whose missing directions then map to the content's mean.
COVARIANCE_EPS = 1e-5


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return (np.asarray(image, np.float64) @ YIQ_FROM_RGB.T).astype(np.float32)


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    """The inverse of rgb_to_yiq; not clipped (chroma from one image and luminance from another
    can leave the RGB cube)."""
    return (np.asarray(image, np.float64) @ RGB_FROM_YIQ.T).astype(np.float32)


def _gray(luminance: np.ndarray) -> np.ndarray:
    """A luminance channel as the RGB image the network takes (Y = R = G = B)."""
    return np.repeat(np.clip(luminance, 0.0, 1.0)[:, :, None], 3, axis=2).astype(np.float32)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance with the content's mean and standard deviation (the paper's
    L_S' = σ_C/σ_S (L_S − μ_S) + μ_C), so the transfer does not shift the photo's brightness."""
    y_style = rgb_to_yiq(style)[:, :, 0].astype(np.float64)
    y_content = rgb_to_yiq(content)[:, :, 0].astype(np.float64)
    scale = y_content.std() / max(y_style.std(), 1e-8)
    return ((y_style - y_style.mean()) * scale + y_content.mean()).astype(np.float32)


def luminance_inputs(content: np.ndarray, styles: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Content and style images reduced to their (matched) luminance, as grey RGB images."""
    content_gray = _gray(rgb_to_yiq(content)[:, :, 0])
    return content_gray, [_gray(match_luminance(style, content)) for style in styles]


def recombine_luminance(result: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The result's luminance with the content's chroma (I and Q), clipped to [0, 1]."""
    height, width = result.shape[:2]
    yiq = rgb_to_yiq(resize(content, height, width))
    yiq[:, :, 0] = rgb_to_yiq(result)[:, :, 0]
    return np.clip(yiq_to_rgb(yiq), 0.0, 1.0)


def color_transfer(source: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) such that A·x + b over the source's pixels x has the reference's RGB mean and
    covariance.

    Uses the symmetric square roots A = Σ_r^½ Σ_s^-½ (the 3-D colour matching of Image Analogies,
    one of the paper's two variants): unlike the Cholesky variant it does not depend on the
    order of the channels.
    """
    src = np.asarray(source, np.float64).reshape(-1, 3)
    ref = np.asarray(reference, np.float64).reshape(-1, 3)
    mean_s, mean_r = src.mean(axis=0), ref.mean(axis=0)
    cov_s = np.cov(src, rowvar=False) + COVARIANCE_EPS * np.eye(3)
    cov_r = np.cov(ref, rowvar=False)
    a = np.real(linalg.sqrtm(cov_r)) @ linalg.inv(np.real(linalg.sqrtm(cov_s)))
    return a, mean_r - a @ mean_s


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image recoloured to the content's RGB mean and covariance, clipped to [0, 1]
    (the network's input range; pixels pushed outside it lose a little of the match)."""
    a, b = color_transfer(style, content)
    matched = np.asarray(style, np.float64) @ a.T + b
    return np.clip(matched, 0.0, 1.0).astype(np.float32)


# The colour map's fit (fit_color_map): rotations of the colour axes, quantiles per axis, and
# pixels drawn from each image. On four of the defaults' 512 px pictures the sliced Wasserstein
# distance to the painting's colours fell from 0.10–0.13 to 0.011–0.012 after 5 rotations,
# 0.003–0.004 after 20 and 0.002–0.003 after 40 (docs/quality.md); 20 take about 2 s there.
COLOR_MAP_ROTATIONS = 20
COLOR_MAP_QUANTILES = 256
COLOR_MAP_SAMPLES = 1 << 17
COLOR_MAP_CHUNK = 1 << 20  # pixels mapped at a time


@dataclass(frozen=True, eq=False)
class ColorMap:
    """A map from colours to colours, fitted by `fit_color_map`: for each rotation of the colour
    axes in turn, each axis's values moved from the source's quantiles to the reference's."""

    bases: np.ndarray  # (rotations, 3, 3): each row a unit direction, the rows orthogonal
    sources: np.ndarray  # (rotations, 3, quantiles): the source's quantiles along each direction
    targets: np.ndarray  # (rotations, 3, quantiles): the reference's at the same levels

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The image's colours mapped, clipped to [0, 1]; a chunk of pixels at a time, so that a
        print of many megapixels (tiled runs) needs no float64 copy of itself."""
        flat = np.asarray(image).reshape(-1, 3)
        out = np.empty(flat.shape, np.float32)
        for start in range(0, len(flat), COLOR_MAP_CHUNK):
            pixels = flat[start : start + COLOR_MAP_CHUNK].astype(np.float64)
            for basis, sources, targets in zip(self.bases, self.sources, self.targets, strict=True):
                _move(pixels, basis, sources, targets)
            out[start : start + COLOR_MAP_CHUNK] = np.clip(pixels, 0.0, 1.0)
        return out.reshape(np.shape(image))


def _move(pixels: np.ndarray, basis: np.ndarray, sources: np.ndarray, targets: np.ndarray) -> None:
    """Each pixel's projection on each direction moved from `sources`' quantiles to `targets'`,
    in place; the directions are orthogonal, so moving along one leaves the others' projections."""
    projections = pixels @ basis.T
    for direction, projection, source, target in zip(basis, projections.T, sources, targets, strict=True):
        pixels += np.outer(np.interp(projection, source, target) - projection, direction)


def sample_pixels(image: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """At most `count` of an image's pixels (count, 3), drawn without replacement; all of them,
    possibly sharing the image's memory, when it has no more (its callers copy: fit_color_map,
    and palette's concatenate)."""
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    if len(pixels) <= count:
        return pixels
    return pixels[rng.choice(len(pixels), count, replace=False)]


def palette(styles: Sequence[np.ndarray], blend: Sequence[float], count: int, seed: int = 0) -> np.ndarray:
    """About `count` of the paintings' pixels (n, 3), each painting's share of them its blend
    weight (at least one pixel each)."""
    rng = np.random.default_rng(seed)
    shares = np.asarray(blend, np.float64) / float(np.sum(blend))
    counts = np.maximum(np.round(shares * count).astype(int), 1)
    return np.concatenate([sample_pixels(s, n, rng) for s, n in zip(styles, counts, strict=True)])


def fit_color_map(
    source: np.ndarray,
    reference: np.ndarray,
    rotations: int = COLOR_MAP_ROTATIONS,
    quantiles: int = COLOR_MAP_QUANTILES,
    seed: int = 0,
) -> ColorMap:
    """The map that moves `source`'s colour distribution onto `reference`'s: Pitié, Kokaram &
    Dahyot's iterative distribution transfer (2005; a sliced optimal transport in three
    dimensions). Each rotation matches the three 1-D distributions along random orthogonal
    directions, quantile to quantile; together they match the joint distribution, where a mean
    and covariance (color_transfer) keep the photo's hues in their places.

    `source` and `reference` are images or pixel arrays (n, 3); the map applies to any colours,
    so it can be fitted on a sample of the picture and applied to all of it.
    """
    rng = np.random.default_rng(seed)
    pixels = np.array(source, np.float64).reshape(-1, 3)
    wanted = np.asarray(reference, np.float64).reshape(-1, 3)
    levels = np.linspace(0.0, 1.0, quantiles)
    bases, sources, targets = [], [], []
    for _ in range(rotations):
        basis = np.linalg.qr(rng.normal(size=(3, 3)))[0].T
        source_q = np.quantile(pixels @ basis.T, levels, axis=0).T
        target_q = np.quantile(wanted @ basis.T, levels, axis=0).T
        _move(pixels, basis, source_q, target_q)
        bases.append(basis)
        sources.append(source_q)
        targets.append(target_q)
    return ColorMap(np.stack(bases), np.stack(sources), np.stack(targets))


def take_palette(image: np.ndarray, styles: Sequence[np.ndarray], blend: Sequence[float]) -> np.ndarray:
    """The picture with the paintings' colours: the colour map fitted on a sample of its pixels
    against the paintings' (in their blend), applied to every pixel. The paintings are the run's
    (run.Run.styles: at the output size, with the style blur, which leaves a painting's colours
    as they were but for its finest grain)."""
    rng = np.random.default_rng(0)
    reference = palette(styles, blend, COLOR_MAP_SAMPLES)
    return fit_color_map(sample_pixels(image, COLOR_MAP_SAMPLES, rng), reference)(image)


def prepare(
    mode: PreserveColors, content: np.ndarray | None, styles: list[np.ndarray]
) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """The content and style images the network should see for this mode."""
    mode = PreserveColors(mode)
    if mode in (PreserveColors.NONE, PreserveColors.PAINTING) or content is None:
        return content, styles
    if mode is PreserveColors.LUMINANCE:
        return luminance_inputs(content, styles)
    return content, [match_histogram(style, content) for style in styles]


def finish(
    mode: PreserveColors,
    result: np.ndarray,
    content: np.ndarray | None,
    styles: Sequence[np.ndarray] = (),
    blend: Sequence[float] = (),
) -> np.ndarray:
    """The output image: with luminance mode, the result's luminance on the content's colours;
    with painting mode, the result in the paintings' colours."""
    mode = PreserveColors(mode)
    if mode is PreserveColors.LUMINANCE and content is not None:
        return recombine_luminance(result, content)
    if mode is PreserveColors.PAINTING and len(styles):
        return take_palette(result, styles, blend)
    return result
