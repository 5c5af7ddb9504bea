"""Reconstructions: one loss alone, from noise (the paper's Figure 1).

The content loss at one layer shows what that layer keeps of the image; the style loss on some
layers gives a texture with the image's style at their scale.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum

from nst_ort.api import StylizeResult
from nst_ort.config import InitKind, LossSpec, Optimizer, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.loop import Callback
from nst_ort.passes import PassCallback, run_passes
from nst_ort.run import ImageLike, Run, prepare

# The paper's procedure: from noise, L-BFGS at one size, content from relu4_2 alone (its Figure
# 1 layer). A reconstruction shows what a loss keeps of an image, the finest scales it leaves
# free included; stylize's coarse-to-fine Adam (docs/quality.md) would hide that, and on a lone
# content loss Adam drives the colours the layer does not see (measured: relu4_2 from noise at
# 256 px came out rainbow-coloured). A loss alone needs more iterations than a stylisation.
DEFAULTS = StylizeConfig(
    iterations=500,
    optimizer=Optimizer.LBFGS,
    init=InitKind.NOISE,
    min_scale=0,
    loss=LossSpec(content_layers={"relu4_2": 1.0}),
)


class ReconstructKind(str, Enum):
    CONTENT = "content"
    STYLE = "style"


def reconstruction_loss(kind: ReconstructKind, layers: list[str] | tuple[str, ...]) -> LossSpec:
    """One loss alone: content at one layer (weight 1), or style on `layers` (equal weights 1/N,
    as the paper weights its style layers), and no TV term. α and β keep their defaults, so loss
    values read like a stylisation's terms."""
    if ReconstructKind(kind) is ReconstructKind.CONTENT:
        return LossSpec(content_layers=dict.fromkeys(layers, 1.0), style_layers={}, tv_weight=0.0)
    return LossSpec(content_layers={}, style_layers=dict.fromkeys(layers, 1.0 / len(layers)), tv_weight=0.0)


def prepare_reconstruction(
    image: ImageLike, kind: ReconstructKind, config: StylizeConfig, engine: Engine | None = None
) -> Run:
    """run.prepare for a reconstruction: the image is the content or the style, as `kind` says."""
    if config.init is InitKind.CONTENT:
        # Starting from the image itself would make a content reconstruction trivial.
        config = replace(config, init=InitKind.NOISE)
    if ReconstructKind(kind) is ReconstructKind.CONTENT:
        return prepare(config, image, [], engine)
    return prepare(config, None, [image], engine)


def reconstruct_run(
    run: Run,
    kind: ReconstructKind,
    callback: Callback | None = None,
    on_pass: PassCallback | None = None,
) -> StylizeResult:
    """`reconstruct` on a prepared run, for callers that show something in between."""
    kind = ReconstructKind(kind)
    image = run.sources["content"] if kind is ReconstructKind.CONTENT else run.sources["styles"][0]
    report = run.report({"reconstruct": kind.value, "image": image})
    result = run_passes(run, run.content, run.styles, report, callback, on_pass)
    return StylizeResult(result.image, result.status, result.message, report)


def reconstruct(
    image: ImageLike,
    kind: ReconstructKind,
    config: StylizeConfig,
    engine: Engine | None = None,
    callback: Callback | None = None,
    on_pass: PassCallback | None = None,
) -> StylizeResult:
    """Minimise `config.loss` (from `reconstruction_loss`) alone, from `config.init` (noise).

    The output has the image's aspect ratio and `config.size` as its longest side.
    """
    run = prepare_reconstruction(image, kind, config, engine)
    return reconstruct_run(run, kind, callback, on_pass)
