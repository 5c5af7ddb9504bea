"""`nst-ort reconstruct content|style` and `nst-ort sweep`: the paper's figures as commands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import errors, layerspec
from nst_ort.cli.options import (
    ContentArgument,
    ContentWeightOption,
    DeviceOption,
    InitOption,
    IterationsOption,
    LrOption,
    ModelOption,
    NormalizeOption,
    OptimizerOption,
    OutputImageOption,
    QuietOption,
    ReportOption,
    SeedOption,
    SizeOption,
    StyleArgument,
    ThreadsOption,
    TvWeightOption,
)
from nst_ort.cli.outputs import check_output, check_output_file, finish_run
from nst_ort.cli.progress import ProgressView, SweepView, err, interrupt_on_sigterm, out
from nst_ort.config import LossSpec, Status, StylizeConfig, parse_init
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import load_image
from nst_ort.studies import grid, reconstruct
from nst_ort.studies.grid import AxisKind
from nst_ort.studies.sweep import run_sweep

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
            f"device: {engine.device}; model: {engine.model_info.path} ({engine.model_info.weights}); "
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
    output_dir: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Folder for the cells, sheet.png, results.csv and results.json (made if missing).",
        ),
    ],
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
    normalize: NormalizeOption = SWEEP.loss.normalize,
    model: ModelOption = SWEEP.model,
    size: SizeOption = SWEEP.size,
    iterations: IterationsOption = SWEEP.iterations,
    optimizer: OptimizerOption = SWEEP.optimizer,
    lr: LrOption = SWEEP.lr,
    init: InitOption = SWEEP.init.value,
    seed: SeedOption = SWEEP.seed,
    jobs: Annotated[
        int, typer.Option(min=1, help="Cells run at once, each in its own process; CPU threads are shared.")
    ] = 1,
    device: DeviceOption = SWEEP.device,
    threads: ThreadsOption = SWEEP.threads,
    quiet: QuietOption = False,
) -> None:
    """Stylise CONTENT with STYLE over a grid of settings: one or two axes.

    An axis is an option given two or more values; one value fixes that setting. Each cell's
    image and report, a labelled sheet.png, results.csv and results.json go to the folder;
    re-running into the same folder skips the cells already done.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise NstError(f"{output_dir}: exists and is not a folder")
    for path in (content, style):
        load_image(path)  # a bad file is one line, before the model loads
    engine = Engine(model, device, threads, backend=SWEEP.backend)
    # β follows α at the default ratio unless --ratio says otherwise.
    loss = LossSpec(
        content_weight=content_weight,
        style_weight=content_weight / SWEEP.loss.ratio,
        tv_weight=tv_weight,
        normalize=normalize,
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
        grid.parse_axis(kind, text, engine.model_info) for kind, text in texts.items() if text is not None
    ]
    sweep = grid.make_sweep(content, style, base, axes)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NstError(f"{output_dir}: cannot make the folder ({exc.strerror})") from None
    _run_sweep(sweep, output_dir, engine, jobs, quiet)


def _run_sweep(sweep: grid.Sweep, output_dir: Path, engine: Engine, jobs: int, quiet: bool) -> None:
    rows, cols = sweep.shape
    count = rows * cols
    if not quiet:
        shape = f"{rows} x {cols}" if sweep.rows else f"{count}"
        info = engine.model_info
        err.print(
            f"sweep: {shape} cells ({' x '.join(a.title for a in sweep.axes)}) at {sweep.base.size} px, "
            f"{sweep.base.iterations} iterations each; device: {engine.device}; model: {info.path} "
            f"({info.weights})",
            highlight=False,
        )
    interrupt_on_sigterm()
    with SweepView(count, quiet) as view:
        outcome = run_sweep(sweep, output_dir, engine, jobs, view.on_cell, view.callback_for)
    if outcome.skipped and not quiet:
        err.print(
            f"{outcome.skipped} of {count} cells already done in {output_dir}, skipped: "
            + ", ".join(view.skipped),
            highlight=False,
        )
    if outcome.interrupted:
        err.print(
            f"interrupted after {len(outcome.records)} of {count} cells; run the same command "
            "again to resume",
            highlight=False,
        )
        raise typer.Exit(errors.INTERRUPTED)
    if not quiet:
        if outcome.ran == 0:
            rewrote = "; wrote the missing sheet and results" if outcome.wrote_summary else "; nothing to do"
            out.print(f"all {count} cells already done in {output_dir}{rewrote}", highlight=False)
        else:
            wrote = "sheet.png, results.csv, results.json" if outcome.wrote_summary else "nothing new"
            out.print(
                f"ran {outcome.ran} cells, {outcome.skipped} already done; wrote {output_dir}/ ({wrote})",
                highlight=False,
            )
    failed = [r for r in outcome.records if r["status"] == Status.NONFINITE]
    if failed:
        raise NstError(
            f"{len(failed)} cells stopped on a non-finite loss (see results.csv); their last good "
            "images are kept",
            errors.FAILURE,
        )
