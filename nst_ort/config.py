"""What a stylisation run is asked to do: one frozen dataclass, choices as str Enums."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path

from nst_ort import backends, contract


class Optimizer(str, Enum):
    LBFGS = "lbfgs"
    ADAM = "adam"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class PreserveColors(str, Enum):
    """Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer"."""

    NONE = "none"
    LUMINANCE = "luminance"  # transfer on luminance only, keep the content's chroma
    HISTOGRAM = "histogram"  # match the style's RGB mean and covariance to the content's first


class InitKind(str, Enum):
    NOISE = "noise"
    CONTENT = "content"
    STYLE = "style"


@dataclass(frozen=True)
class LossSpec:
    """Which layers enter the loss, with what weights: α L_content + β L_style + γ TV."""

    content_layers: dict[str, float] = field(
        default_factory=lambda: {layer: 1.0 for layer in contract.DEFAULT_CONTENT_LAYERS}
    )
    # Equal weights over the five layers, as in the paper's Figure 2 (w_l = 1/5).
    style_layers: dict[str, float] = field(
        default_factory=lambda: {layer: 0.2 for layer in contract.DEFAULT_STYLE_LAYERS}
    )
    # α/β = 1e-4, the strong-style end of the paper's range for its Figure 2 (1e-3 … 1e-4), chosen
    # by eye on tubingen + starry_night with the default model (HED's VGG-16, Caffe's 0–255
    # input). The content term sums over positions and the per-position style term does not, so
    # the same α/β gives more content weight at larger sizes; other weights may want other β.
    content_weight: float = 1.0
    style_weight: float = 1e4
    # Off by default as in the paper; a small γ smooths high-frequency noise.
    tv_weight: float = 0.0

    def layer_key(self) -> str:
        """The layer set, which decides the shape of the training graph (not the weights)."""
        return "c:" + ",".join(sorted(self.content_layers)) + "|s:" + ",".join(sorted(self.style_layers))


@dataclass(frozen=True)
class StylizeConfig:
    model: Path | None = None  # None: the default export in the user cache
    size: int = 512  # longest side of the output, in pixels
    # L-BFGS iterations or Adam steps: from the content image, 100–200 L-BFGS iterations already
    # look finished at 256–512 px; 300 leaves margin without the 1000 of neural-style.
    iterations: int = 300
    optimizer: Optimizer = Optimizer.LBFGS
    # Adam's step on [0, 1] pixels: ~2/255 per step moves colours visibly within 100 steps
    # without the oscillation seen above 0.05.
    lr: float = 0.02
    # The paper starts from white noise (InitKind.NOISE), which needs many more iterations to
    # show the content; starting from the content image gives a finished image in a few minutes.
    init: InitKind | Path = InitKind.CONTENT
    seed: int = 0
    loss: LossSpec = field(default_factory=LossSpec)
    style_blend: tuple[float, ...] | None = None  # weights for several style images; normalised
    style_scale: float = 1.0  # style image size relative to the output (neural-style's -style_scale)
    # Coarse-to-fine: longest sides of the passes run before the one at `size` (which is added
    # when the last scale is smaller), each initialised with the previous result upsampled.
    scales: tuple[int, ...] | None = None
    # Iterations of each pass, `size`'s included; None: see scales.default_iterations.
    scale_iterations: tuple[int, ...] | None = None
    preserve_colors: PreserveColors = PreserveColors.NONE
    device: Device = Device.AUTO
    threads: int = 0  # 0: ONNX Runtime's default (one per core)
    backend: str = backends.DEFAULT  # where dL/dimage comes from: a name in backends.BACKENDS


def _init_from(value) -> InitKind | Path:
    try:
        return InitKind(value)
    except ValueError:
        return Path(value)


def config_from_dict(data: dict) -> StylizeConfig:
    """A StylizeConfig from its JSON form in a report (for --resume)."""
    converters = {
        "model": lambda v: Path(v) if v else None,
        "init": _init_from,
        "loss": lambda v: LossSpec(**v),
    }
    defaults = StylizeConfig()
    kwargs = {}
    for f in fields(StylizeConfig):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        if f.name in converters:
            value = converters[f.name](value)
        elif isinstance(default, Enum):
            value = type(default)(value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return StylizeConfig(**kwargs)
