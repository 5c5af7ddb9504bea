"""How much memory an optimisation needs, from the layer shapes, and whether it fits.

Measured with onnxruntime-training-cpu 1.19.2 (VGG-16 to conv5_1, the default loss): peak memory
grew by 7.1 KB per output pixel, 3.2 times the 2.25 KB of forward activations per pixel, over a
fixed part of about 14 copies of the model file (the ONNX graph, the graphs cut from it and the
ONNX Runtime sessions each hold the weights). The estimate rounds both factors up.
"""

from __future__ import annotations

import math
import os

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo

ACTIVATION_FACTOR = 3.5  # peak bytes per byte of forward activations (measured 3.2)
MODEL_COPIES = 16  # peak bytes per byte of model file (measured about 14)
BASE_BYTES = 200 << 20  # Python, numpy, onnx and ONNX Runtime themselves
SIZE_STEP = 16  # suggested sizes are multiples of the deepest pooling factor


def activation_floats_per_pixel(arch: contract.Arch, deepest: str) -> float:
    """Floats of every layer output up to `deepest`, per pixel of the input image."""
    total = 0.0
    for layer in contract.layer_sequence(arch):
        total += contract.layer_channels(layer) / contract.layer_downsampling(layer) ** 2
        if layer == deepest:
            break
    return total


def bytes_per_pixel(info: ModelInfo, spec: LossSpec) -> float:
    layers = list(spec.content_layers) + list(spec.style_layers)
    if not layers:  # TV alone: the image and its gradient
        return 4 * 3 * ACTIVATION_FACTOR
    deepest = contract.deepest(info.arch, layers)
    return 4 * activation_floats_per_pixel(info.arch, deepest) * ACTIVATION_FACTOR


def estimate_bytes(info: ModelInfo, spec: LossSpec, height: int, width: int) -> int:
    fixed = BASE_BYTES + MODEL_COPIES * info.size_bytes
    return int(fixed + bytes_per_pixel(info, spec) * height * width)


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def largest_fitting_side(info: ModelInfo, spec: LossSpec, height: int, width: int, available: int) -> int:
    """The longest side, keeping the aspect ratio, whose estimate fits in `available`."""
    pixels = (available - BASE_BYTES - MODEL_COPIES * info.size_bytes) / bytes_per_pixel(info, spec)
    if pixels <= 0:
        return 0
    longest, shortest = max(height, width), min(height, width)
    side = math.sqrt(pixels * longest / shortest)
    return int(side // SIZE_STEP * SIZE_STEP)


def check_fits(
    info: ModelInfo, spec: LossSpec, height: int, width: int, available: int | None = None
) -> None:
    """Refuse up front, with the estimate and the largest size that fits, rather than be killed."""
    available = available_bytes() if available is None else available
    need = estimate_bytes(info, spec, height, width)
    if need <= available:
        return
    side = largest_fitting_side(info, spec, height, width, available)
    hint = f"the largest size that fits is about `size` {side}" if side >= MIN_SIDE else "no size fits"
    raise NstError(
        f"{width}x{height} px needs about {need / 2**30:.1f} GiB of memory, "
        f"{available / 2**30:.1f} GiB is available; {hint}"
    )
