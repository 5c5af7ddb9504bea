"""How much memory an optimisation needs, from the layer shapes, and whether it fits.

Measured per backend (VGG-16 to conv5_1, the default loss), as peak memory over forward
activations per pixel (2.25 KB) and a fixed part in copies of the model file (the ONNX graph,
the graphs cut from it and the ONNX Runtime sessions each hold the weights):

- ort-training (onnxruntime-training-cpu 1.19.2): 7.1 KB per output pixel, 3.2 times the
  activations, over about 14 copies of the model.
- ort-graph (onnxruntime-training-cpu 1.19.2's InferenceSession, the target and the gradient
  session together): one pass at 256-768 px 3.2-3.3 KB per pixel, 1.45 times the activations,
  over about 6 copies; one pass at 1448 px 1.74 times, and a coarse-to-fine run ending at 1024 or
  1448 px 1.86 and 1.91 times (ONNX Runtime's arenas keep what the passes before took, and grow
  in large steps).

The estimate rounds both factors up; a backend not measured gets ort-training's. Estimates are
for the backend that runs (the engine's, `auto` resolved).

The sliced style term adds its projections and their temporaries per style layer: measured with
ort-graph at 512 px (the default layers), one evaluation peaked 0.51 GB above the Gram term's,
about 4 copies of the style layers' features (122 floats per pixel).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo


@dataclass(frozen=True)
class Factors:
    activations: float  # peak bytes per byte of forward activations
    model_copies: int  # peak bytes per byte of model file


FACTORS = {
    "ort-training": Factors(3.5, 16),  # measured 3.2 and about 14
    "ort-graph": Factors(2.1, 8),  # measured up to 1.91 and about 6
}
UNMEASURED = FACTORS["ort-training"]
SLICED_COPIES = 5  # the sliced term's bytes per byte of the style layers' features (measured 4)
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


def factors(backend: str) -> Factors:
    return FACTORS.get(backend, UNMEASURED)


def bytes_per_pixel(info: ModelInfo, spec: LossSpec, backend: str) -> float:
    factor = factors(backend).activations
    layers = list(spec.content_layers) + list(spec.style_layers)
    if not layers:  # TV alone: the image and its gradient
        return 4 * 3 * factor
    deepest = contract.deepest(info.arch, layers)
    sliced = 0.0
    if contract.StyleLoss(spec.style_loss) is contract.StyleLoss.SLICED:
        sliced = SLICED_COPIES * sum(
            contract.layer_channels(layer) / contract.layer_downsampling(layer) ** 2
            for layer in spec.style_layers
        )
    return 4 * (activation_floats_per_pixel(info.arch, deepest) * factor + sliced)


def fixed_bytes(info: ModelInfo, backend: str) -> int:
    return BASE_BYTES + factors(backend).model_copies * info.size_bytes


def estimate_bytes(info: ModelInfo, spec: LossSpec, height: int, width: int, backend: str) -> int:
    return int(fixed_bytes(info, backend) + bytes_per_pixel(info, spec, backend) * height * width)


def _meminfo(field: str) -> int | None:
    """A /proc/meminfo field in bytes (Linux); None where there is none."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _pages(name: str) -> int | None:
    try:
        return os.sysconf(name) * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


UNKNOWN = 1 << 62  # memory not known: do not refuse


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else free physical pages."""
    found = _meminfo("MemAvailable")
    found = _pages("SC_AVPHYS_PAGES") if found is None else found
    return UNKNOWN if found is None else found


def total_bytes() -> int:
    """The machine's physical memory: MemTotal (Linux), else its physical pages."""
    found = _meminfo("MemTotal")
    found = _pages("SC_PHYS_PAGES") if found is None else found
    return UNKNOWN if found is None else found


def side_for(pixels: float, height: int, width: int) -> int:
    """The longest side, a multiple of SIZE_STEP, of an image of this aspect ratio with at most
    `pixels` pixels (0 when none)."""
    if pixels <= 0:
        return 0
    longest, shortest = max(height, width), min(height, width)
    side = math.sqrt(pixels * longest / shortest)
    return int(side // SIZE_STEP * SIZE_STEP)


def largest_fitting_side(
    info: ModelInfo,
    spec: LossSpec,
    height: int,
    width: int,
    available: int,
    backend: str,
) -> int:
    """The longest side, keeping the aspect ratio, whose estimate fits in `available`."""
    pixels = (available - fixed_bytes(info, backend)) / bytes_per_pixel(info, spec, backend)
    return side_for(pixels, height, width)


def check_fits(
    info: ModelInfo,
    spec: LossSpec,
    height: int,
    width: int,
    backend: str,
    available: int | None = None,
) -> None:
    """Refuse up front, with the estimate and the largest size that fits, rather than be killed."""
    available = available_bytes() if available is None else available
    need = estimate_bytes(info, spec, height, width, backend)
    if need <= available:
        return
    side = largest_fitting_side(info, spec, height, width, available, backend)
    hint = f"the largest size that fits is about `size` {side}" if side >= MIN_SIDE else "no size fits"
    raise NstError(
        f"{width}x{height} px needs about {need / 2**30:.1f} GiB of memory, "
        f"{available / 2**30:.1f} GiB is available; {hint}"
    )
