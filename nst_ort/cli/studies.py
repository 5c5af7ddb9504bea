"""`nst-ort reconstruct content|style` and `nst-ort sweep`: the paper's figures as commands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import layerspec
from nst_ort.cli.cells import check_folder, make_runner, run_cells
from nst_ort.cli.options import (
    ContentArgument,
    ContentWeightOption,
    DeviceOption,
    InitOption,
    IterationsOption,
    JobsOption,
    LrOption,
    ModelOption,
    NormalizeOption,
    OptimizerOption,
    OutputFolderOption,
    OutputImageOption,
    QuietOption,
    RayOption,
    ReportOption,
    SeedOption,
    SizeOption,
    StyleArgument,
    StyleLossOption,
    ThreadsOption,
    TvChromaOption,
    TvWeightOption,
)
from nst_ort.cli.outputs import check_output, check_output_file, finish_run
from nst_ort.cli.progress import ProgressView, err, interrupt_on_sigterm
from nst_ort.config import LossSpec, StylizeConfig, parse_init
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import load_image
from nst_ort.studies import grid, reconstruct
from nst_ort.studies.grid import AxisKind

reconstruct_app = typer.Typer(
    no_args_is_help=True,
    help="Reconstruct an image from one loss alone, starting from noise (the paper's Figure 1).",
)
RECONSTRUCT = reconstruct.DEFAULTS
SWEEP = grid.DEFAULTS
ImageArgument = Annotated[Path, typer.Argument(help="Image to reconstruct.")]


def _reconstruct(
    kind: reconstruct.ReconstructKind,
    image: Path,
    output: Path,
    layers: str,
    config: StylizeConfig,
    report: Path | None,
    quiet: bool,
) -> None:
    """Reconstruct `image` from `kind`'s loss on `layers`, with the settings of `config`."""
    check_output(output, [image])
    if report is not None:
        check_output_file(report, [image, output])
    engine = Engine(config.model, config.device, config.threads, backend=config.backend)
    available = getattr(engine.model_info, f"{kind.value}_layers")
    chosen = layerspec.layer_list(layers, available, kind.value)
    if kind is reconstruct.ReconstructKind.CONTENT and len(chosen) != 1:
        raise NstError(f"--layer: one content layer, not {len(chosen)}")
    config = replace(config, loss=reconstruct.reconstruction_loss(kind, chosen))
    run = reconstruct.prepare_reconstruction(image, kind, config, engine)
    if not quiet:
        err.print(
            f"device: {engine.device}; backend: {engine.backend}; model: {engine.model_info.path} "
            f"({engine.model_info.weights}); "
            f"{kind.value} loss alone on {', '.join(chosen)}",
            highlight=False,
        )
    interrupt_on_sigterm()
    with ProgressView(config.iterations, quiet, 0, output, description="reconstructing") as view:
        result = reconstruct.reconstruct_run(run, kind, callback=view, on_pass=view.start_pass)
    finish_run(result, output, report, quiet)


@reconstruct_app.command("content")
def reconstruct_content(
    image: ImageArgument,
    output: OutputImageOption,
    layer: Annotated[
        str, typer.Option(help="The content layer; the model's are listed by `nst-ort info`.")
    ] = next(iter(RECONSTRUCT.loss.content_layers)),
    model: ModelOption = RECONSTRUCT.model,
    size: SizeOption = RECONSTRUCT.size,
    iterations: IterationsOption = RECONSTRUCT.iterations,
    optimizer: OptimizerOption = RECONSTRUCT.optimizer,
    lr: LrOption = RECONSTRUCT.lr,
    seed: SeedOption = RECONSTRUCT.seed,
    device: DeviceOption = RECONSTRUCT.device,
    threads: ThreadsOption = RECONSTRUCT.threads,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Reconstruct IMAGE from one layer's content loss alone, starting from noise.

    Shows what the layer keeps of the image: low layers the exact pixels, high layers the
    arrangement without the exact pixels (the paper's Figure 1, content reconstructions).
    """
    config = replace(
        RECONSTRUCT, model=model, size=size, iterations=iterations, optimizer=optimizer, lr=lr, seed=seed
    )
    config = replace(config, device=device, threads=threads)
    _reconstruct(reconstruct.ReconstructKind.CONTENT, image, output, layer, config, report, quiet)


@reconstruct_app.command("style")
def reconstruct_style(
    image: Annotated[Path, typer.Argument(help="Style image.")],
    output: OutputImageOption,
    layers: Annotated[
        str, typer.Option(help="Style layers, e.g. relu1_1,relu2_1 or relu1_1..relu3_1; equal weights.")
    ] = ",".join(RECONSTRUCT.loss.style_layers),
    model: ModelOption = RECONSTRUCT.model,
    size: SizeOption = RECONSTRUCT.size,
    iterations: IterationsOption = RECONSTRUCT.iterations,
    optimizer: OptimizerOption = RECONSTRUCT.optimizer,
    lr: LrOption = RECONSTRUCT.lr,
    seed: SeedOption = RECONSTRUCT.seed,
    device: DeviceOption = RECONSTRUCT.device,
    threads: ThreadsOption = RECONSTRUCT.threads,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Synthesise a texture from IMAGE's style loss alone on some layers, starting from noise.

    Shows the image's style at the scale of those layers (the paper's Figure 1, style
    reconstructions).
    """
    config = replace(
        RECONSTRUCT, model=model, size=size, iterations=iterations, optimizer=optimizer, lr=lr, seed=seed
    )
    config = replace(config, device=device, threads=threads)
    _reconstruct(reconstruct.ReconstructKind.STYLE, image, output, layers, config, report, quiet)


def sweep_command(
    content: ContentArgument,
    style: StyleArgument,
    output_dir: OutputFolderOption,
    content_layer: Annotated[
        str | None,
        typer.Option(
            help="Content layer per cell: relu1_2,relu3_2 or relu1_2..relu5_2 "
            f"(default: {layerspec.format_layers(SWEEP.loss.content_layers)})."
        ),
    ] = None,
    style_layers: Annotated[
        str | None,
        typer.Option(
            help="Style layers per cell: relu1_1,relu2_1 (one layer each), relu1_1+relu2_1 (one set), "
            "cumulative:relu1_1..relu5_1 (relu1_1, then relu1_1+relu2_1, …); default: the paper's five."
        ),
    ] = None,
    ratio: Annotated[
        str | None,
        typer.Option(
            help=f"α/β per cell, e.g. 3,1,0.3,0.1 (default: {grid.scientific(SWEEP.loss.ratio)}); "
            "α stays --content-weight, β = α / ratio. The paper's 1e-5 … 1e-2 are for its plain "
            "sums (--no-normalize)."
        ),
    ] = None,
    style_size: Annotated[
        str | None, typer.Option(help="Style image longest side per cell, px, e.g. 128,256,512.")
    ] = None,
    style_scale: Annotated[
        str | None, typer.Option(help="Style image size relative to the output per cell, e.g. 0.5,1,2.")
    ] = None,
    content_weight: ContentWeightOption = SWEEP.loss.content_weight,
    tv_weight: TvWeightOption = SWEEP.loss.tv_weight,
    tv_chroma: TvChromaOption = SWEEP.loss.tv_chroma,
    normalize: NormalizeOption = SWEEP.loss.normalize,
    style_loss: StyleLossOption = SWEEP.loss.style_loss,
    model: ModelOption = SWEEP.model,
    size: SizeOption = SWEEP.size,
    iterations: IterationsOption = SWEEP.iterations,
    optimizer: OptimizerOption = SWEEP.optimizer,
    lr: LrOption = SWEEP.lr,
    init: InitOption = SWEEP.init.value,
    seed: SeedOption = SWEEP.seed,
    jobs: JobsOption = 1,
    ray: RayOption = None,
    device: DeviceOption = SWEEP.device,
    threads: ThreadsOption = SWEEP.threads,
    quiet: QuietOption = False,
) -> None:
    """Stylise CONTENT with STYLE over a grid of settings: one or two axes.

    An axis is an option given two or more values; one value fixes that setting. Each cell's
    image and report, a labelled sheet.png, results.csv and results.json go to the folder;
    re-running into the same folder skips the cells already done. With --ray the cells run on
    a Ray cluster and only this process writes files.
    """
    check_folder(output_dir)
    for path in (content, style):
        load_image(path)  # a bad file is one line, before the model loads
    runner = make_runner(model, device, threads, SWEEP.backend, jobs, ray)
    # β follows α at the default ratio unless --ratio says otherwise.
    loss = LossSpec(
        content_weight=content_weight,
        style_weight=content_weight / SWEEP.loss.ratio,
        tv_weight=tv_weight,
        tv_chroma=tv_chroma,
        normalize=normalize,
        style_loss=style_loss,
    )
    base = replace(
        SWEEP, model=model, size=size, iterations=iterations, optimizer=optimizer, lr=lr, seed=seed
    )
    base = replace(base, init=parse_init(init), loss=loss, device=device, threads=threads)
    texts = {
        AxisKind.CONTENT_LAYER: content_layer,
        AxisKind.STYLE_LAYERS: style_layers,
        AxisKind.STYLE_SIZE: style_size,
        AxisKind.STYLE_SCALE: style_scale,
        AxisKind.RATIO: ratio,
    }
    axes = [
        grid.parse_axis(kind, text, runner.model_info) for kind, text in texts.items() if text is not None
    ]
    sweep = grid.make_sweep(content, style, base, axes)
    run_cells(sweep, output_dir, runner, quiet)
