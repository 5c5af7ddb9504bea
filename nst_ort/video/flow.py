"""Optical flow between content frames (OpenCV's DIS), warping, and where the flow can be trusted.

Flows are (height, width, 2) float32 in pixels, (dx, dy): `flow(a, b)` maps each pixel p of `a`
to p + flow(p) in `b`, so that `warp(b, flow(a, b))` looks like `a`. The weights c of the
temporal term are Ruder et al.'s (2016, section 3.1): 0 where the forward-backward check finds a
disocclusion, on motion boundaries, and where the flow leaves the frame; 1 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nst_ort.errors import NstError
from nst_ort.imageio import to_uint8

INSTALL_HINT = "pip install 'nst-ort[video]'"


def require_cv2():
    """The cv2 module, or one line that says how to install it."""
    try:
        import cv2
    except ImportError:
        raise NstError(f"OpenCV is not installed; {INSTALL_HINT}") from None
    return cv2


def _gray(image: np.ndarray) -> np.ndarray:
    cv2 = require_cv2()
    return cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DIS optical flow from RGB image `a` to `b` (same size), OpenCV's medium preset: dense, with
    variational refinement, a few milliseconds at 256 px."""
    cv2 = require_cv2()
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(a), _gray(b), None)


def _sample_points(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = field.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return x + field[..., 0], y + field[..., 1]


def _remap(array: np.ndarray, field: np.ndarray, interpolation: int) -> np.ndarray:
    cv2 = require_cv2()
    map_x, map_y = _sample_points(field)
    source = np.ascontiguousarray(array, np.float32)
    return cv2.remap(source, map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE).reshape(
        array.shape
    )


def warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """`image` (values in [0, 1]) sampled at p + field(p); points outside take the nearest edge
    pixel (the weights leave them out of the temporal term).

    Bicubic, not bilinear: each later frame starts from the warp of the one before, so the warp's
    low-pass adds up over a clip. Measured at 128 px over 10 frames (README, "Video"), bilinear
    warps left the tenth frame visibly blurred and its style loss 15% above the second's;
    bicubic ones kept it as crisp as the first.
    """
    cv2 = require_cv2()
    return np.clip(_remap(image, field, cv2.INTER_CUBIC), 0.0, 1.0)


@dataclass(frozen=True)
class Motion:
    """From one frame back to the one before: where each pixel was, and whether to trust it."""

    backward: np.ndarray  # flow(current, previous): warp(previous, backward) aligns it with current
    weights: np.ndarray  # (height, width) float32, c in {0, 1}


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights for `backward` (current -> previous), given `forward` (previous ->
    current): 0 where |w̃ + ŵ|² > 0.01(|w̃|² + |ŵ|²) + 0.5 with w̃ the forward flow warped to the
    current frame (a disocclusion: the two flows disagree), where |∇û|² + |∇v̂|² > 0.01|ŵ|² + 0.002
    (a motion boundary), and where p + ŵ(p) is outside the frame; 1 elsewhere."""
    height, width = backward.shape[:2]
    warped_forward = _remap(forward, backward, require_cv2().INTER_LINEAR)
    mismatch = np.sum((warped_forward + backward) ** 2, axis=2)
    magnitude = np.sum(warped_forward**2, axis=2) + np.sum(backward**2, axis=2)
    disoccluded = mismatch > 0.01 * magnitude + 0.5
    du_dy, du_dx = np.gradient(backward[..., 0])
    dv_dy, dv_dx = np.gradient(backward[..., 1])
    gradient = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    boundary = gradient > 0.01 * np.sum(backward**2, axis=2) + 0.002
    x, y = _sample_points(backward)
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    return (~(disoccluded | boundary | outside)).astype(np.float32)


def motion(previous: np.ndarray, current: np.ndarray) -> Motion:
    """The backward flow of two consecutive content frames and its weights."""
    backward = flow(current, previous)
    return Motion(backward, consistency(backward, flow(previous, current)))


def warping_error(previous: np.ndarray, current: np.ndarray, moved: Motion) -> float:
    """The temporal-consistency measure of two consecutive output frames: the mean, over the
    pixels the weights keep, of the squared RGB distance between `current` and `previous` warped
    to it (Lai et al. 2018's E_warp, with Ruder's weights as the mask). NaN when none is kept."""
    kept = float(moved.weights.sum())
    if kept == 0:
        return float("nan")
    difference = np.sum((current - warp(previous, moved.backward)) ** 2, axis=2, dtype=np.float64)
    return float(np.sum(difference * moved.weights) / kept)
