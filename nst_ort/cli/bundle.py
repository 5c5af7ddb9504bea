"""`nst-ort bundle` and `nst-ort run-bundle`: write a self-contained bundle, run one in Python."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import contract, layerspec
from nst_ort.bundle import driver
from nst_ort.bundle.write import DEFAULTS, make_bundle
from nst_ort.cli.options import (
    BackendOption,
    ContentArgument,
    ContentLayersOption,
    ContentWeightOption,
    DeviceOption,
    InitOption,
    IterationsOption,
    LrOption,
    ModelOption,
    NormalizeOption,
    QuietOption,
    SeedOption,
    SizeOption,
    StyleBlendOption,
    StyleBlurOption,
    StyleLayersOption,
    StyleLossOption,
    StylesArgument,
    StyleScaleOption,
    StyleWeightOption,
    ThreadsOption,
    TvChromaOption,
    TvWeightOption,
    floats,
    loss_from_options,
)
from nst_ort.cli.outputs import check_output, exit_if_stopped
from nst_ort.cli.progress import ProgressView, err, interrupt_on_sigterm, out
from nst_ort.config import Status, StylizeConfig, parse_init
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import save_image
from nst_ort.loop import StepRecord


def bundle_command(
    content: ContentArgument,
    styles: StylesArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle folder to create (new or empty).")],
    model: ModelOption = DEFAULTS.model,
    size: SizeOption = DEFAULTS.size,
    iterations: IterationsOption = DEFAULTS.iterations,
    lr: LrOption = DEFAULTS.lr,
    init: InitOption = DEFAULTS.init.value,
    seed: SeedOption = DEFAULTS.seed,
    content_weight: ContentWeightOption = DEFAULTS.loss.content_weight,
    style_weight: StyleWeightOption = DEFAULTS.loss.style_weight,
    tv_weight: TvWeightOption = DEFAULTS.loss.tv_weight,
    tv_chroma: TvChromaOption = DEFAULTS.loss.tv_chroma,
    normalize: NormalizeOption = DEFAULTS.loss.normalize,
    style_loss: StyleLossOption = DEFAULTS.loss.style_loss,
    content_layers: ContentLayersOption = layerspec.format_layers(DEFAULTS.loss.content_layers),
    style_layers: StyleLayersOption = None,
    style_blend: StyleBlendOption = DEFAULTS.style_blend,
    style_scale: StyleScaleOption = DEFAULTS.style_scale,
    style_blur: StyleBlurOption = DEFAULTS.style_blur,
    device: DeviceOption = DEFAULTS.device,
    threads: ThreadsOption = DEFAULTS.threads,
    backend: BackendOption = DEFAULTS.backend,
) -> None:
    """Write a self-contained folder (a model, its inputs, bundle.json) for one run.

    ort-graph (bundle version 2): the gradient graph at this size, for any ONNX Runtime (Python,
    Node, a browser page: examples/); ort-training (version 1): onnxruntime-training 1.19.2's
    artifacts. The bundle runs Adam (--lr and --iterations are what it recommends); the targets
    are computed here, on --device.
    """
    engine = Engine(model, device, threads, backend=backend)
    loss = loss_from_options(
        engine.model_info,
        content_layers,
        style_layers,
        content_weight,
        style_weight,
        tv_weight,
        normalize,
        style_loss,
        tv_chroma,
    )
    config = StylizeConfig(
        model=model,
        size=size,
        iterations=iterations,
        lr=lr,
        init=parse_init(init),
        seed=seed,
        loss=loss,
        style_blend=floats(style_blend, "style_blend"),
        style_scale=style_scale,
        style_blur=style_blur,
        device=device,
        threads=threads,
        backend=backend,
    )
    with err.status("computing targets and writing the bundle"):
        info = make_bundle(content, styles, output, config, engine)
    out.print(
        f"wrote {info.directory} ({backend}, {info.bytes / 1e6:.1f} MB, {info.width}x{info.height} px, "
        f"Adam lr {lr:g}, {iterations} steps); run it with: nst-ort run-bundle {info.directory} -o OUT.png",
        highlight=False,
    )


def run_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `nst-ort bundle`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output image (.png, …).")],
    iterations: Annotated[int | None, typer.Option(min=0, help="Adam steps (default: the bundle's).")] = None,
    threads: ThreadsOption = DEFAULTS.threads,
    quiet: QuietOption = False,
) -> None:
    """Run a bundle with the Python reference driver (ONNX Runtime, numpy, Pillow only)."""
    try:
        loaded = driver.load_bundle(bundle)
    except driver.BundleError as exc:
        raise NstError(str(exc)) from None
    check_output(output, [loaded.path(role) for role in loaded.manifest["files"]])
    total = loaded.iterations if iterations is None else iterations
    interrupt_on_sigterm()
    start = time.perf_counter()
    with ProgressView(total, quiet, 0, output) as view:

        def on_step(step: int, losses: dict[str, float], milliseconds: float) -> None:
            view(StepRecord(step, step, losses, time.perf_counter() - start), None)

        try:
            result = driver.run_bundle(loaded, iterations, threads, on_step)
        except driver.BundleError as exc:  # e.g. a version 1 bundle without onnxruntime-training
            raise NstError(str(exc)) from None
    save_image(output, result.image)
    exit_if_stopped(Status(result.status), result.message, output)
    if not quiet:
        final = result.losses[-1] if result.losses else {}
        out.print(
            f"{result.status}: {output} in {time.perf_counter() - start:.1f} s, {len(result.losses)} steps; "
            f"loss {final.get(contract.LOSS, float('nan')):.4g}",
            highlight=False,
        )
