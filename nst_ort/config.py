"""What a run is asked to do: frozen dataclasses, choices as str Enums, and the one validation pass.

Every user-facing default is written here once, as a field default (the study and bundle front
ends start from presets of these); the CLI reads its option defaults from the fields. Errors
name config fields in backticks (`style_blend`); the CLI shows each as its option (--style-blend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path

from nst_ort import backends, contract, errors
from nst_ort.errors import NstError
from nst_ort.imageio import fit_longest
from nst_ort.model import ModelInfo


class Optimizer(str, Enum):
    LBFGS = "lbfgs"
    ADAM = "adam"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class PreserveColors(str, Enum):
    """Whose colours the picture keeps: Gatys et al. 2016, "Preserving Color in Neural Artistic
    Style Transfer" (luminance, histogram: the photo's), or the painting's."""

    NONE = "none"
    LUMINANCE = "luminance"  # transfer on luminance only, keep the content's chroma
    HISTOGRAM = "histogram"  # match the style's RGB mean and covariance to the content's first
    # The other way round: the finished picture's colours moved onto the painting's colour
    # distribution (colors.fit_color_map), for where the photo's colours show through.
    PAINTING = "painting"


class InitKind(str, Enum):
    NOISE = "noise"
    CONTENT = "content"
    STYLE = "style"


class Status(str, Enum):
    """How a run ended (or that it has not): in results, reports and sweep records."""

    RUNNING = "running"
    DONE = "done"
    CONVERGED = "converged"  # L-BFGS stopped before its iterations: nothing left to gain
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM; the last image is kept
    NONFINITE = "nonfinite"  # a loss or gradient became NaN or infinite; the last good image is kept
    FAILED = "failed"  # a sweep's or batch's cell that could not run (a bad image, a lost worker)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def stopped(self) -> bool:
        """Ended before its iterations were done, for a reason the caller must hear of."""
        return self in (Status.INTERRUPTED, Status.NONFINITE, Status.FAILED)

    @property
    def exit_code(self) -> int:
        failed = {Status.NONFINITE: errors.FAILURE, Status.FAILED: errors.FAILURE}
        return {**failed, Status.INTERRUPTED: errors.INTERRUPTED}.get(self, 0)


@dataclass(frozen=True)
class LossSpec:
    """Which layers enter the loss, with what weights: α L_content + β L_style + γ TV."""

    # The paper's relu4_2, with relu2_2 at half weight: relu4_2 alone lets the finest scales
    # drift (docs/quality.md); relu2_2 keeps the photo's edges crisp where the style would blur them.
    content_layers: dict[str, float] = field(default_factory=lambda: {"relu4_2": 1.0, "relu2_2": 0.5})
    # The paper's five layers, falling with depth rather than its equal 1/5: with every term a
    # relative error, equal weights let relu4_1 and relu5_1 paste the painting's objects into the
    # picture (the Scream's figure, Matisse's hat, Escher's hand) and blur the photo's structure
    # (docs/quality.md); these keep the swirls and bands and the houses crisp.
    style_layers: dict[str, float] = field(
        default_factory=lambda: {
            "relu1_1": 0.3,
            "relu2_1": 0.25,
            "relu3_1": 0.2,
            "relu4_1": 0.15,
            "relu5_1": 0.1,
        }
    )
    # With `normalize` the terms are relative errors: β = 10α was chosen by eye on the quality
    # gallery (docs/quality.md). Without it these are the paper's sums, and the HED VGG-16's
    # wanted about β = 1e4 α.
    content_weight: float = 1.0
    style_weight: float = 10.0
    # Per pixel (with `normalize`): enough to keep the 5–8 px weave that a start from noise
    # leaves in flat regions out of the picture, not enough to flatten the strokes.
    tv_weight: float = 1.5
    # How many times a colour difference between neighbouring pixels costs more in the TV term
    # than a difference in brightness (export/losses.tv_loss; 1: the plain TV, the paper's and
    # neural-style's). The network barely sees pixel-scale colour, so the style terms leave a
    # fine pink, green and blue speckle in the strokes that the plain TV, at a weight that keeps
    # the strokes, leaves alone; 20 took the gallery's artifact scores to neural-style's
    # (docs/quality.md). Tiled passes apply it too: each tile runs the same graph.
    tv_chroma: float = 20.0
    # Each term divided by the size of its target (targets.normalized_loss), so that every layer
    # counts as its weight says whatever the network's activations; TV per pixel.
    normalize: bool = True
    # gram: the paper's Gram matrices. sliced: each layer's feature distribution along C random
    # directions (new ones each pass) matched by histogram, as sliced Wasserstein (Heitz et al.
    # 2021) and histogram losses (Risser et al. 2017) do (docs/quality.md).
    style_loss: contract.StyleLoss = contract.StyleLoss.GRAM

    @property
    def ratio(self) -> float:
        """α/β, the paper's measure of content against style."""
        return self.content_weight / self.style_weight

    def layer_key(self) -> str:
        """The layer set, which decides the shape of the training graph (not the weights)."""
        style = ",".join(sorted(self.style_layers))
        return (
            "c:"
            + ",".join(sorted(self.content_layers))
            + f"|s:{contract.StyleLoss(self.style_loss).value}:"
            + style
        )


@dataclass(frozen=True)
class StylizeConfig:
    model: Path | None = None  # None: the default export in the user cache
    size: int = 512  # longest side of the output, in pixels
    # Adam steps or L-BFGS iterations, over all passes (passes.default_iterations: 258, 129, 65,
    # 32 and 16 over the 128 … 512 px ladder, each later pass taking about the same time): 0.31x
    # the time of the 900-step schedule before it, pictures a little softer (docs/quality.md).
    iterations: int = 500
    # Adam, coarse to fine, averaged (style-transfer-pytorch's way): L-BFGS pours its steps into
    # directions the network barely sees and leaves a pixel grid over flat regions (docs/quality.md).
    optimizer: Optimizer = Optimizer.ADAM
    # Adam's step on [0, 1] pixels: ~2/255 per step moves colours visibly within 100 steps
    # without the oscillation seen above 0.05.
    lr: float = 0.02
    # The paper's start, white noise: the picture takes the painting's palette; a start from the
    # photo keeps the photo's colours in flat regions (a pale sky under The Scream).
    init: InitKind | Path = InitKind.NOISE
    seed: int = 0
    loss: LossSpec = field(default_factory=LossSpec)
    style_blend: tuple[float, ...] | None = None  # weights for several style images; normalised
    style_scale: float = 1.0  # style image size relative to the output (neural-style's -style_scale)
    # σ of a Gaussian blur, in output pixels, of each style image at the size the last pass uses
    # (targets.style_for_run). A departure from the paper and neural-style: the finest 2–3 px of
    # a photographed painting at that size are its grain, crayon and JPEG noise more than its
    # brushwork, and the Grams copy them into the picture as a crackle over the strokes
    # (docs/quality.md). 0: the style image as it is.
    style_blur: float = 0.5
    # Coarse-to-fine: longest sides of the passes run before the one at `size` (which is added
    # when the last scale is smaller), each initialised with the previous result upsampled.
    scales: tuple[int, ...] | None = None
    # Iterations of each pass, `size`'s included; None: see passes.default_iterations.
    scale_iterations: tuple[int, ...] | None = None
    # Without `scales`: passes along style-transfer-pytorch's ladder, `size` / √2^k from the
    # first at or above `min_scale` (128, 181, 256, 362, 512 for 512 px); 0, or `size` or more:
    # one pass.
    min_scale: int = 128
    # Passes with more pixels than a `tile` x `tile` square run in overlapping tiles of at most
    # that side, blended (nst_ort/tiles/); 0: chosen from the memory available (tiles.resolve).
    tile: int = 0
    # Adam: the output is the exponential moving average of the iterates with this decay
    # (0: the last iterate), over at most a quarter of a pass (loop.pass_ema_decay); see loop.run_adam.
    ema_decay: float = 0.99
    preserve_colors: PreserveColors = PreserveColors.NONE
    device: Device = Device.AUTO
    threads: int = 0  # 0: ONNX Runtime's default (one per core)
    backend: str = backends.DEFAULT  # where dL/dimage comes from: a name in backends.BACKENDS


def parse_init(value: str | Path) -> InitKind | Path:
    """`noise`, `content`, `style` or an image file."""
    try:
        return InitKind(value)
    except ValueError:
        return Path(value)


# Fields added after reports were first written, with the values that reproduce a run from
# before them: a report without the field ran without the feature.
ADDED_FIELDS = {"min_scale": 0, "ema_decay": 0.0, "style_blur": 0.0}
ADDED_LOSS_FIELDS = {"normalize": False, "style_loss": contract.StyleLoss.GRAM.value, "tv_chroma": 1.0}


def loss_from_dict(data: dict) -> LossSpec:
    """A LossSpec from its JSON form in a report."""
    data = {**ADDED_LOSS_FIELDS, **data}
    return LossSpec(**{**data, "style_loss": contract.StyleLoss(data["style_loss"])})


def config_from_dict(data: dict) -> StylizeConfig:
    """A StylizeConfig from its JSON form in a report (for resume)."""
    converters = {
        "model": lambda v: Path(v) if v else None,
        "init": parse_init,
        "loss": loss_from_dict,
    }
    defaults = StylizeConfig()
    data = {**ADDED_FIELDS, **data}
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


# --- validation ----------------------------------------------------------------------------------

# The smallest tile side: room for its overlaps (nst_ort/tiles/grid.py) and a few pixels at the
# deepest layers.
MIN_TILE = 32


def pass_sizes(config: StylizeConfig) -> list[int]:
    """The longest side of each pass: the scales, then `size` unless the last scale is it;
    without scales, the √2 ladder from `min_scale` up to `size`."""
    if config.scales:
        sizes = list(config.scales)
        return sizes if sizes[-1] >= config.size else [*sizes, config.size]
    ladder = [config.size]
    while config.min_scale and round(config.size / 2 ** (len(ladder) / 2)) >= config.min_scale:
        ladder.append(round(config.size / 2 ** (len(ladder) / 2)))
    return ladder[::-1]


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise NstError(f"`{name}` {value}: must be a finite number")


def _check_scales(config: StylizeConfig) -> None:
    scales = list(config.scales or ())
    if any(s < contract.MIN_SIDE for s in scales):
        raise NstError(f"`scales`: every scale must be at least {contract.MIN_SIDE} px")
    if any(b <= a for a, b in zip(scales, scales[1:], strict=False)):
        raise NstError("`scales` must increase, e.g. 256,512")
    if scales and scales[-1] > config.size:
        raise NstError(f"`scales` {scales[-1]} is larger than `size` {config.size}")
    if config.scale_iterations is not None:
        sizes = pass_sizes(config)
        if len(config.scale_iterations) != len(sizes):
            raise NstError(
                f"`scale_iterations` has {len(config.scale_iterations)} counts for {len(sizes)} passes "
                f"({', '.join(map(str, sizes))} px)"
            )
        if any(n < 1 for n in config.scale_iterations):
            raise NstError("`scale_iterations`: every count must be at least 1")


def _check_blend(blend: tuple[float, ...] | None, styles: int | None) -> None:
    if blend is None:
        return
    if styles is not None and len(blend) != styles:
        raise NstError(f"`style_blend` has {len(blend)} weights for {styles} style images")
    if not all(math.isfinite(w) and w >= 0 for w in blend) or sum(blend) <= 0:
        raise NstError("`style_blend` weights must be finite, non-negative and not all zero")


def check_loss(spec: LossSpec, info: ModelInfo | None = None) -> None:
    """Finite weights, layer weights 0 or more, and (given the model) layers and terms it has."""
    style_loss = contract.StyleLoss(spec.style_loss)
    if info is not None and style_loss.value not in info.style_losses:
        raise NstError(
            f"`style_loss`: {info.path.name} has no {style_loss.value} style term; export it again "
            "with this version (`nst-ort export`)"
        )
    for name in ("content_weight", "style_weight", "tv_weight"):
        _finite(name, getattr(spec, name))
    if not math.isfinite(spec.tv_chroma) or spec.tv_chroma < 0:
        raise NstError(f"`tv_chroma` {spec.tv_chroma}: must be a finite number, 0 or more")
    for kind, layers in (("content", spec.content_layers), ("style", spec.style_layers)):
        for layer, weight in layers.items():
            if not math.isfinite(weight) or weight < 0:
                raise NstError(
                    f"`{kind}_layers`: weight {weight} for {layer} must be a finite number, 0 or more"
                )
        available = () if info is None else getattr(info, f"{kind}_layers")
        missing = [layer for layer in layers if info is not None and layer not in available]
        if missing:
            raise NstError(
                f"{info.path.name} has no {kind} layer {', '.join(missing)}; it has "
                f"{', '.join(available)} (`nst-ort export` exports every layer of its network)"
            )


def validate(
    config: StylizeConfig,
    model_info: ModelInfo | None = None,
    styles: int | None = None,
    frame: tuple[int, int] | None = None,
) -> None:
    """Refuse, with one line naming the config field, what `config` cannot run.

    The checks that need more than the config run when it is given: `model_info` (the layers it
    has), `styles` (how many style images, for style_blend), `frame` (the content's height and
    width: every pass must leave the deepest layers some pixels).
    """
    check_loss(config.loss, model_info)
    for name in ("lr", "style_scale"):
        _finite(name, getattr(config, name))
    if config.size < contract.MIN_SIDE:
        raise NstError(f"`size` {config.size} is too small; at least {contract.MIN_SIDE} px")
    if config.iterations < 1:
        raise NstError(f"`iterations` {config.iterations}: at least 1")
    if config.lr < 0:
        raise NstError(f"`lr` {config.lr}: must not be negative")
    if config.style_scale <= 0:
        raise NstError(f"`style_scale` {config.style_scale}: must be positive")
    if not math.isfinite(config.style_blur) or config.style_blur < 0:
        raise NstError(f"`style_blur` {config.style_blur}: must be a finite number, 0 or more")
    if config.threads < 0:
        raise NstError(f"`threads` {config.threads}: 0 (one per core) or more")
    if config.min_scale and config.min_scale < contract.MIN_SIDE:
        raise NstError(f"`min_scale` {config.min_scale}: 0 (one pass) or at least {contract.MIN_SIDE} px")
    if config.tile and config.tile < MIN_TILE:
        raise NstError(f"`tile` {config.tile}: 0 (chosen from the memory) or at least {MIN_TILE} px")
    _finite("ema_decay", config.ema_decay)
    if not 0 <= config.ema_decay < 1:
        raise NstError(f"`ema_decay` {config.ema_decay}: from 0 (off) to less than 1")
    backends.check_name(config.backend)
    if isinstance(config.init, Path) and not config.init.is_file():
        raise NstError(f"`init` {config.init}: not noise, content, style or an image file")
    _check_scales(config)
    _check_blend(config.style_blend, styles)
    if frame is not None:
        sizes = pass_sizes(config)
        for i, size in enumerate(sizes):
            height, width = fit_longest(*frame, size)
            if min(height, width) < contract.MIN_SIDE:
                name = ("scales" if config.scales else "min_scale") if i < len(sizes) - 1 else "size"
                raise NstError(
                    f"`{name}` {size} makes a {width}x{height} image; the deepest layers need at "
                    f"least {contract.MIN_SIDE} px per side"
                )
