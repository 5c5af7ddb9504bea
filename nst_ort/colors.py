"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, arXiv:1606.05897).

Two ways to keep the content photo's colours: transfer the style on luminance only and put the
content's chroma back (`luminance`), or give the style image the content's colour statistics
before the transfer (`histogram`). Images are float32 RGB in [0, 1], height x width x 3.
"""

from __future__ import annotations

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


def prepare(
    mode: PreserveColors, content: np.ndarray | None, styles: list[np.ndarray]
) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """The content and style images the network should see for this mode."""
    mode = PreserveColors(mode)
    if mode is PreserveColors.NONE or content is None:
        return content, styles
    if mode is PreserveColors.LUMINANCE:
        return luminance_inputs(content, styles)
    return content, [match_histogram(style, content) for style in styles]


def finish(mode: PreserveColors, result: np.ndarray, content: np.ndarray | None) -> np.ndarray:
    """The output image: with luminance mode, the result's luminance on the content's colours."""
    if PreserveColors(mode) is PreserveColors.LUMINANCE and content is not None:
        return recombine_luminance(result, content)
    return result
