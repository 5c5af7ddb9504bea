"""Every option of the command line, declared once, and how option text becomes config.

Defaults are not written here: each command takes them from the config it builds (StylizeConfig
or a front end's preset of it), so `--help` shows what the library would do. A library error
names a config field in backticks (`style_blend`); `as_options` shows it as its option
(--style-blend), the one mapping between the two.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import backends, layerspec
from nst_ort.config import Device, LossSpec, Optimizer, PreserveColors, StylizeConfig
from nst_ort.contract import MIN_SIDE, StyleLoss
from nst_ort.model import ModelInfo
from nst_ort.studies.grid import AxisKind
from nst_ort.video.config import VideoConfig

STYLIZE = StylizeConfig()  # the defaults of stylize (and of resume's report)
LOSS = STYLIZE.loss

# --- config fields and their options ---------------------------------------------------------

FIELDS = frozenset(
    [f.name for f in fields(StylizeConfig) if f.name != "loss"]
    + [f.name for f in fields(LossSpec)]
    + [kind.value for kind in AxisKind]
    + [f.name for f in fields(VideoConfig) if f.name != "stylize"]
)


def flag(field: str) -> str:
    """The option of a config field: style_blend -> --style-blend (Typer's own naming)."""
    return "--" + field.replace("_", "-")


def as_options(message: str) -> str:
    """A library message for the command line: each `field` it names becomes its --option."""
    return re.sub(r"`(\w+)`", lambda m: flag(m[1]) if m[1] in FIELDS else m[0], message)


# --- arguments and options, each declared once ---------------------------------------------------

# Existence and format are checked by the image loader, whose errors are one line.
ContentArgument = Annotated[Path, typer.Argument(help="Content photo.")]
StyleArgument = Annotated[Path, typer.Argument(help="Style image.")]
StylesArgument = Annotated[list[Path], typer.Argument(help="One or more style images.")]
OutputImageOption = Annotated[Path, typer.Option("-o", "--output", help="Output image (.png, .jpg, …).")]
ModelOption = Annotated[
    Path | None, typer.Option(help="Exported model (default: the user cache's default model)")
]
SizeOption = Annotated[int, typer.Option(help=f"Longest side of the output, px (at least {MIN_SIDE}).")]
IterationsOption = Annotated[int, typer.Option(help="L-BFGS iterations or Adam steps.")]
OptimizerOption = Annotated[Optimizer, typer.Option(help="lbfgs (bounded L-BFGS-B) or adam.")]
LrOption = Annotated[float, typer.Option(help="Adam learning rate on [0, 1] pixels.")]
InitOption = Annotated[str, typer.Option(help="content, noise (the paper's start), style, or an image file.")]
SeedOption = Annotated[int, typer.Option(help="Seed for the noise initialisation.")]
ContentWeightOption = Annotated[float, typer.Option(help="α, the content loss weight.")]
StyleWeightOption = Annotated[float, typer.Option(help="β, the style loss weight.")]
TvWeightOption = Annotated[float, typer.Option(help="γ, the total-variation weight.")]
TvChromaOption = Annotated[
    float,
    typer.Option(
        help="How many times a colour difference between neighbouring pixels costs more in the "
        "TV term than a brightness one (1: the plain TV); keeps pink and green speckle out of the strokes."
    ),
]
ContentLayersOption = Annotated[
    str, typer.Option(help="Content layers, e.g. relu4_2 or relu4_2:1,relu5_2:0.5.")
]
StyleLayersOption = Annotated[
    str | None,
    typer.Option(
        help="Style layers with optional weights, e.g. relu1_1:0.2,relu2_1:0.2 "
        f"(default: the paper's five, {layerspec.format_layers(LossSpec().style_layers)}).",
    ),
]
StyleBlendOption = Annotated[
    str | None, typer.Option(help="Weights of the style images, comma-separated; normalised.")
]
StyleScaleOption = Annotated[float, typer.Option(help="Style image size relative to the output.")]
StyleBlurOption = Annotated[
    float,
    typer.Option(
        help="σ, in output px, of a Gaussian blur of the style images at the last pass's size: keeps "
        "the painting's grain and JPEG noise out of the strokes (0: none)."
    ),
]
ScalesOption = Annotated[
    str | None,
    typer.Option(
        help="Coarse-to-fine: longest sides of the passes, e.g. 256,512; each starts from the "
        "previous result upsampled; --size is the last (added if missing)."
    ),
]
ScaleIterationsOption = Annotated[
    str | None,
    typer.Option(
        help="Iterations of each pass (--scales or --min-scale), e.g. 400,100 (default: "
        "--iterations split so that each pass after the first takes about the same time, the "
        "first twice the second's steps: 258,129,65,32,16 at 512 px)."
    ),
]
MinScaleOption = Annotated[
    int,
    typer.Option(
        help="Without --scales: passes from this size up to --size in steps of √2 (128, 181, 256, "
        "362, 512), each from the previous result upsampled; 0 or --size: one pass."
    ),
]
TileOption = Annotated[
    int,
    typer.Option(
        help="Passes with more pixels than a TILE x TILE square run in overlapping tiles of at most "
        "that side, blended; 0: chosen from the memory available (at most a third of the machine's)."
    ),
]
EmaDecayOption = Annotated[
    float,
    typer.Option(help="Adam: output the moving average of the iterates with this decay; 0: the last one."),
]
NormalizeOption = Annotated[
    bool,
    typer.Option(
        help="Divide each loss term by the size of its target, so that every layer counts "
        "(--no-normalize: the paper's plain sums)."
    ),
]
StyleLossOption = Annotated[
    StyleLoss,
    typer.Option(
        help="How style is compared: gram (the paper's Gram matrices) or sliced (each layer's "
        "feature distributions along random directions, matched by histogram: sliced Wasserstein)."
    ),
]
PreserveColorsOption = Annotated[
    PreserveColors,
    typer.Option(
        help="Keep the content's colours: luminance (transfer on luminance only) or "
        "histogram (match the style's colours to the content's first); or take the "
        "painting's: painting (the finished picture recoloured to the painting's colour "
        "distribution; not for video)."
    ),
]
DeviceOption = Annotated[Device, typer.Option(help="auto uses CUDA when available.")]
ThreadsOption = Annotated[int, typer.Option(help="CPU threads; 0 = one per core.")]
BackendOption = Annotated[
    str,
    typer.Option(
        help=f"Where the gradient comes from: {backends.AUTO}, {', '.join(backends.BACKENDS)} (auto: "
        "ov-bf16 on CPUs where bf16 beats float32 with OpenVINO installed, else ort-graph; "
        "ort-graph: the export's gradient graph, any onnxruntime; ort-training: onnxruntime-training; "
        "ov-bf16: that graph in bf16 through OpenVINO, faster there and less exact; openvino-bf16: "
        "the same through onnxruntime-openvino, nst-ort[openvino])."
    ),
]
SaveEveryOption = Annotated[
    int, typer.Option(min=0, help="Save the image every N iterations next to the output.")
]
ReportOption = Annotated[Path | None, typer.Option(help="Write a JSON report here.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]

# Sweeps and batches: a folder of cells, and where the cells run.
OutputFolderOption = Annotated[
    Path,
    typer.Option(
        "-o",
        "--output",
        help="Folder for the cells, sheet.png, results.csv and results.json (made if missing).",
    ),
]
JobsOption = Annotated[
    int, typer.Option(min=1, help="Cells run at once, each in its own process; CPU threads are shared.")
]
RayOption = Annotated[
    str | None,
    typer.Option(
        help="Run each cell (sweep, batch) or each tile of a tiled pass (stylize) as a task on a Ray "
        "cluster: auto (the cluster this machine belongs to: $RAY_ADDRESS or a `ray start` here), "
        "HOST:PORT (its head) or ray://HOST:PORT (Ray Client). Each task reserves --threads CPUs "
        "(0: the cluster's CPUs shared among the tasks) and ONNX Runtime runs as many threads; only "
        "this process writes files."
    ),
]


# --- option text -> config ---------------------------------------------------------------------


def floats(text: str | None, field: str) -> tuple[float, ...] | None:
    return None if text is None else layerspec.numbers(text, f"`{field}`")


def ints(text: str | None, field: str) -> tuple[int, ...] | None:
    return None if text is None else layerspec.whole_numbers(text, f"`{field}`")


def loss_from_options(
    info: ModelInfo,
    content_layers: str,
    style_layers: str | None,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
    normalize: bool,
    style_loss: StyleLoss,
    tv_chroma: float,
) -> LossSpec:
    """The LossSpec the loss options ask for, layers checked against the model's."""
    style_spec = style_layers or layerspec.format_layers(LOSS.style_layers)
    return LossSpec(
        content_layers=layerspec.weighted_layers(content_layers, info.content_layers, "content"),
        style_layers=layerspec.weighted_layers(style_spec, info.style_layers, "style"),
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        tv_chroma=tv_chroma,
        normalize=normalize,
        style_loss=style_loss,
    )
