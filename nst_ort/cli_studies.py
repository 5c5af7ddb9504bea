"""The study commands, `nst-ort reconstruct content|style` and `nst-ort sweep`, on cli.app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from nst_ort import contract, errors
from nst_ort.cli import (
    ProgressView,
    _check_output,
    _check_output_file,
    _init,
    _interrupt_on_sigterm,
    app,
    err,
    finish_run,
    out,
)
from nst_ort.config import Device, LossSpec, Optimizer, StylizeConfig
from nst_ort.errors import NstError

reconstruct_app = typer.Typer(
    no_args_is_help=True,
    help="Reconstruct an image from one loss alone, starting from noise (the paper's Figure 1).",
)
app.add_typer(reconstruct_app, name="reconstruct")

ModelOption = Annotated[
    Path | None,
    typer.Option(dir_okay=False, help="Exported model (default: the user cache's default model)"),
]
OutputOption = Annotated[
    Path, typer.Option("-o", "--output", dir_okay=False, help="Output image (.png, .jpg, …).")
]
OptimizerOption = Annotated[Optimizer, typer.Option(help="lbfgs (bounded L-BFGS-B) or adam.")]
LrOption = Annotated[float, typer.Option(min=0.0, help="Adam learning rate on [0, 1] pixels.")]
SeedOption = Annotated[int, typer.Option(help="Seed for the noise initialisation.")]
DeviceOption = Annotated[Device, typer.Option(help="auto uses CUDA when available.")]
ThreadsOption = Annotated[int, typer.Option(min=0, help="CPU threads; 0 = one per core.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
ReportOption = Annotated[Path | None, typer.Option(dir_okay=False, help="Write a JSON report here.")]


def _reconstruct(
    kind: str,
    image: Path,
    output: Path,
    layers: str,
    model: Path | None,
    size: int,
    iterations: int,
    optimizer: Optimizer,
    lr: float,
    seed: int,
    device: Device,
    threads: int,
    report: Path | None,
    quiet: bool,
) -> None:
    from nst_ort.engine import Engine
    from nst_ort.layerspec import layer_list
    from nst_ort.studies import ReconstructKind, reconstruct, reconstruction_loss

    kind = ReconstructKind(kind)
    _check_output(output, [image])
    if report is not None:
        _check_output_file(report, [image, output])
    engine = Engine(model, device.value, threads)
    if kind is ReconstructKind.CONTENT:
        chosen = layer_list(layers, engine.model_info.content_layers, "content")
        if len(chosen) != 1:
            raise NstError(f"--layer: one content layer, not {len(chosen)}")
    else:
        chosen = layer_list(layers, engine.model_info.style_layers, "style")
    config = StylizeConfig(
        model=model,
        size=size,
        iterations=iterations,
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        loss=reconstruction_loss(kind, chosen),
        device=device,
        threads=threads,
    )
    if not quiet:
        err.print(
            f"device: {engine.device}; model: {engine.model_info.path} ({engine.model_info.weights}); "
            f"{kind.value} loss alone on {', '.join(chosen)}",
            highlight=False,
        )
    _interrupt_on_sigterm()
    with ProgressView(iterations, quiet, 0, output, description="reconstructing") as view:
        result = reconstruct(image, kind, config, engine, callback=view, on_pass=view.start_pass)
    finish_run(result, output, report, quiet)


@reconstruct_app.command("content")
def reconstruct_content(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Image to reconstruct.")],
    output: OutputOption,
    layer: Annotated[
        str, typer.Option(help="The content layer; the model's are listed by `nst-ort info`.")
    ] = contract.DEFAULT_CONTENT_LAYERS[0],
    model: ModelOption = None,
    size: Annotated[int, typer.Option(min=16, help="Longest side of the output, px.")] = 512,
    iterations: Annotated[int, typer.Option(min=1, help="L-BFGS iterations or Adam steps.")] = 500,
    optimizer: OptimizerOption = Optimizer.LBFGS,
    lr: LrOption = 0.02,
    seed: SeedOption = 0,
    device: DeviceOption = Device.AUTO,
    threads: ThreadsOption = 0,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Reconstruct IMAGE from one layer's content loss alone, starting from noise.

    Shows what the layer keeps of the image: low layers the exact pixels, high layers the
    arrangement without the exact pixels (the paper's Figure 1, content reconstructions).
    """
    _reconstruct(
        "content",
        image,
        output,
        layer,
        model,
        size,
        iterations,
        optimizer,
        lr,
        seed,
        device,
        threads,
        report,
        quiet,
    )


@reconstruct_app.command("style")
def reconstruct_style(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Style image.")],
    output: OutputOption,
    layers: Annotated[
        str, typer.Option(help="Style layers, e.g. relu1_1,relu2_1 or relu1_1..relu3_1; equal weights.")
    ] = ",".join(contract.DEFAULT_STYLE_LAYERS),
    model: ModelOption = None,
    size: Annotated[int, typer.Option(min=16, help="Longest side of the output, px.")] = 512,
    iterations: Annotated[int, typer.Option(min=1, help="L-BFGS iterations or Adam steps.")] = 500,
    optimizer: OptimizerOption = Optimizer.LBFGS,
    lr: LrOption = 0.02,
    seed: SeedOption = 0,
    device: DeviceOption = Device.AUTO,
    threads: ThreadsOption = 0,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Synthesise a texture from IMAGE's style loss alone on some layers, starting from noise.

    Shows the image's style at the scale of those layers (the paper's Figure 1, style
    reconstructions).
    """
    _reconstruct(
        "style",
        image,
        output,
        layers,
        model,
        size,
        iterations,
        optimizer,
        lr,
        seed,
        device,
        threads,
        report,
        quiet,
    )


@app.command("sweep")
def sweep_command(
    content: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Content photo.")],
    style: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Style image.")],
    output_dir: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            file_okay=False,
            help="Folder for the cells, sheet.png, results.csv and results.json (made if missing).",
        ),
    ],
    content_layer: Annotated[
        str | None,
        typer.Option(help="Content layer per cell: relu1_2,relu3_2 or relu1_2..relu5_2 (default: relu4_2)."),
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
            help="alpha/beta per cell, e.g. 1e-5,1e-4,1e-3,1e-2 (default: 1e-4); alpha stays "
            "--content-weight, beta = alpha / ratio."
        ),
    ] = None,
    style_size: Annotated[
        str | None, typer.Option(help="Style image longest side per cell, px, e.g. 128,256,512.")
    ] = None,
    style_scale: Annotated[
        str | None, typer.Option(help="Style image size relative to the output per cell, e.g. 0.5,1,2.")
    ] = None,
    content_weight: Annotated[float, typer.Option(help="alpha, the content loss weight.")] = 1.0,
    tv_weight: Annotated[float, typer.Option(help="gamma, the total-variation weight.")] = 0.0,
    model: ModelOption = None,
    size: Annotated[int, typer.Option(min=16, help="Longest side of each cell's image, px.")] = 256,
    iterations: Annotated[int, typer.Option(min=1, help="L-BFGS iterations or Adam steps per cell.")] = 300,
    optimizer: OptimizerOption = Optimizer.LBFGS,
    lr: LrOption = 0.02,
    init: Annotated[str, typer.Option(help="noise (the paper), content, style, or an image file.")] = "noise",
    seed: SeedOption = 0,
    jobs: Annotated[
        int, typer.Option(min=1, help="Cells run at once, each in its own process; CPU threads are shared.")
    ] = 1,
    device: DeviceOption = Device.AUTO,
    threads: ThreadsOption = 0,
    quiet: QuietOption = False,
) -> None:
    """Stylise CONTENT with STYLE over a grid of settings: one or two axes.

    An axis is an option given two or more values; one value fixes that setting. Each cell's
    image and report, a labelled sheet.png, results.csv and results.json go to the folder;
    re-running into the same folder skips the cells already done.
    """
    from nst_ort.engine import Engine
    from nst_ort.studies import (
        AxisKind,
        apply_axis,
        make_sweep,
        parse_content_layers,
        parse_numbers,
        parse_style_layers,
        run_sweep,
    )

    if output_dir.exists() and not output_dir.is_dir():
        raise NstError(f"{output_dir}: exists and is not a folder")
    if style_size is not None and style_scale is not None:
        raise NstError("--style-size and --style-scale set the same thing; give one")
    engine = Engine(model, device.value, threads)
    info = engine.model_info
    base = StylizeConfig(
        model=model,
        size=size,
        iterations=iterations,
        optimizer=optimizer,
        lr=lr,
        init=_init(init),
        seed=seed,
        loss=LossSpec(content_weight=content_weight, style_weight=content_weight / 1e-4, tv_weight=tv_weight),
        device=device,
        threads=threads,
    )
    given = [
        (content_layer, lambda t: parse_content_layers(t, info.content_layers)),
        (style_layers, lambda t: parse_style_layers(t, info.style_layers)),
        (style_size, lambda t: parse_numbers(AxisKind.STYLE_SIZE, t)),
        (style_scale, lambda t: parse_numbers(AxisKind.STYLE_SCALE, t)),
        (ratio, lambda t: parse_numbers(AxisKind.RATIO, t)),
    ]
    axes = []
    for text, parse in given:
        if text is None:
            continue
        axis = parse(text)
        if len(axis.values) == 1:  # one value: a fixed setting, not an axis
            base = apply_axis(base, axis.kind, axis.values[0])
        else:
            axes.append(axis)
    sweep = make_sweep(content, style, base, axes)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NstError(f"{output_dir}: cannot make the folder ({exc.strerror})") from None

    count = len(sweep.cols.values) * (len(sweep.rows.values) if sweep.rows else 1)
    shape = f"{len(sweep.rows.values)} x {len(sweep.cols.values)}" if sweep.rows else f"{count}"
    axes_text = " x ".join(a.title for a in ([sweep.rows] if sweep.rows else []) + [sweep.cols])
    if not quiet:
        err.print(
            f"sweep: {shape} cells ({axes_text}) at {size} px, {iterations} iterations each; "
            f"device: {engine.device}; model: {info.path} ({info.weights})",
            highlight=False,
        )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )
    overall = progress.add_task("cells", total=count)
    current = {"task": None}
    skipped_cells: list[str] = []

    def label(cell) -> str:
        return " | ".join(x for x in (cell.row_label, cell.col_label) if x)

    def on_cell(cell, record, skipped: bool) -> None:
        progress.advance(overall)
        if skipped:
            skipped_cells.append(label(cell))
            return
        if current["task"] is not None:
            progress.remove_task(current["task"])
            current["task"] = None
        if not quiet:
            progress.console.print(
                f"{label(cell)}: {record['status']} in {record['seconds']:.1f} s, "
                f"{record['evaluations']} evaluations, loss {record[contract.LOSS]:.4g}",
                highlight=False,
            )

    def callback_for(cell):
        if current["task"] is not None:
            progress.remove_task(current["task"])
        current["task"] = progress.add_task(label(cell), total=cell.config.iterations)

        def callback(record, image) -> None:
            progress.update(current["task"], completed=record.step)

        return callback

    _interrupt_on_sigterm()
    with progress:
        outcome = run_sweep(sweep, output_dir, engine, jobs, on_cell, callback_for)
    if outcome.skipped and not quiet:
        err.print(
            f"{outcome.skipped} of {count} cells already done in {output_dir}, skipped: "
            + ", ".join(skipped_cells),
            highlight=False,
        )
    if outcome.interrupted:
        err.print(
            f"interrupted after {len(outcome.records)} of {count} cells; run the same command "
            "again to resume",
            highlight=False,
        )
        raise typer.Exit(errors.INTERRUPTED)
    failed = [r for r in outcome.records if r["status"] == "nonfinite"]
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
    if failed:
        raise NstError(
            f"{len(failed)} cells stopped on a non-finite loss (see results.csv); their last good "
            "images are kept",
            errors.FAILURE,
        )
