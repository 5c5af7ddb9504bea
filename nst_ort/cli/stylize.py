"""`nst-ort stylize` and `nst-ort resume`: one stylisation, with progress, its image and report."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import layerspec
from nst_ort.api import stylize_run
from nst_ort.cli.checkpoint import Checkpoint
from nst_ort.cli.options import (
    STYLIZE,
    BackendOption,
    ContentArgument,
    ContentLayersOption,
    ContentWeightOption,
    DeviceOption,
    EmaDecayOption,
    InitOption,
    IterationsOption,
    LrOption,
    MinScaleOption,
    ModelOption,
    NormalizeOption,
    OptimizerOption,
    OutputImageOption,
    PreserveColorsOption,
    QuietOption,
    RayOption,
    ReportOption,
    SaveEveryOption,
    ScaleIterationsOption,
    ScalesOption,
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
    TileOption,
    TvChromaOption,
    TvWeightOption,
    floats,
    ints,
    loss_from_options,
)
from nst_ort.cli.outputs import check_output, check_output_file, finish_run
from nst_ort.cli.progress import ProgressView, err, interrupt_on_sigterm
from nst_ort.config import Status, StylizeConfig, config_from_dict, parse_init
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import load_image
from nst_ort.run import prepare
from nst_ort.studies import cluster
from nst_ort.tiles import Here, Tiling


def stylize_command(
    content: ContentArgument,
    styles: StylesArgument,
    output: OutputImageOption,
    model: ModelOption = STYLIZE.model,
    size: SizeOption = STYLIZE.size,
    iterations: IterationsOption = STYLIZE.iterations,
    optimizer: OptimizerOption = STYLIZE.optimizer,
    lr: LrOption = STYLIZE.lr,
    init: InitOption = STYLIZE.init.value,
    seed: SeedOption = STYLIZE.seed,
    content_weight: ContentWeightOption = STYLIZE.loss.content_weight,
    style_weight: StyleWeightOption = STYLIZE.loss.style_weight,
    tv_weight: TvWeightOption = STYLIZE.loss.tv_weight,
    tv_chroma: TvChromaOption = STYLIZE.loss.tv_chroma,
    normalize: NormalizeOption = STYLIZE.loss.normalize,
    style_loss: StyleLossOption = STYLIZE.loss.style_loss,
    content_layers: ContentLayersOption = layerspec.format_layers(STYLIZE.loss.content_layers),
    style_layers: StyleLayersOption = None,
    style_blend: StyleBlendOption = STYLIZE.style_blend,
    style_scale: StyleScaleOption = STYLIZE.style_scale,
    style_blur: StyleBlurOption = STYLIZE.style_blur,
    scales: ScalesOption = STYLIZE.scales,
    scale_iterations: ScaleIterationsOption = STYLIZE.scale_iterations,
    min_scale: MinScaleOption = STYLIZE.min_scale,
    tile: TileOption = STYLIZE.tile,
    ema_decay: EmaDecayOption = STYLIZE.ema_decay,
    preserve_colors: PreserveColorsOption = STYLIZE.preserve_colors,
    device: DeviceOption = STYLIZE.device,
    threads: ThreadsOption = STYLIZE.threads,
    backend: BackendOption = STYLIZE.backend,
    save_every: SaveEveryOption = 0,
    report: ReportOption = None,
    ray: RayOption = None,
    quiet: QuietOption = False,
) -> None:
    """Stylise CONTENT with STYLES by optimising the image (Gatys et al. 2015).

    Passes larger than memory allows run in overlapping tiles (--tile), here or with --ray on a
    Ray cluster; `nst-ort resume` continues an interrupted run from the tile it was in.
    """
    # Absolute paths in the config and report, so that `nst-ort resume` works from anywhere.
    content, styles, output = content.absolute(), [p.absolute() for p in styles], output.absolute()
    model, report = (p.absolute() if p is not None else None for p in (model, report))
    check_output(output, [content, *styles])
    if report is not None:
        check_output_file(report, [content, *styles, output])
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
        optimizer=optimizer,
        lr=lr,
        init=parse_init(init),
        seed=seed,
        loss=loss,
        style_blend=floats(style_blend, "style_blend"),
        style_scale=style_scale,
        style_blur=style_blur,
        scales=ints(scales, "scales"),
        scale_iterations=ints(scale_iterations, "scale_iterations"),
        min_scale=min_scale,
        tile=tile,
        ema_decay=ema_decay,
        preserve_colors=preserve_colors,
        device=device,
        threads=threads,
        backend=backend,
    )
    run_stylize(engine, content, styles, config, output, report, save_every, quiet, ray=ray)


def run_stylize(
    engine: Engine,
    content: Path,
    styles: list[Path],
    config: StylizeConfig,
    output: Path,
    report: Path | None,
    save_every: int,
    quiet: bool,
    previous: dict | None = None,
    ray: str | None = None,
) -> None:
    """Run one stylisation with progress; write the image and report whatever the outcome.

    With a report, a tiled pass keeps its finished tiles beside it (checkpoint.py) for resume."""
    # Inputs are read and checked before anything is shown, so a bad file is the only line printed.
    run = prepare(config, content, styles, engine)
    resume = None
    if previous is not None:
        resume = (load_image(output), previous["iterations"][-1]["step"] if previous["iterations"] else 0)
    checkpoint = Checkpoint(report) if report is not None else None
    resumed = None
    if checkpoint is not None and previous is not None:
        resumed = checkpoint.load()
    elif checkpoint is not None:
        checkpoint.clear()  # an earlier run's tiles are not this one's
    runner = cluster.Cluster(config.model, ray) if ray is not None else contextlib.nullcontext(Here())
    with runner as where:
        if not quiet:
            info = engine.model_info
            on = f"; tiles on the {where.describe()}" if ray is not None else ""
            err.print(
                f"device: {engine.device}; backend: {engine.backend}; model: {info.path} "
                f"({info.arch.value}, {info.weights}){on}",
                highlight=False,
            )
        interrupt_on_sigterm()
        done = resume[1] if resume is not None else 0
        with ProgressView(config.iterations - done, quiet, save_every, output) as view:
            view.last_step = done  # a resumed run's steps count on from the interrupted ones
            hears = [view.on_tile] + ([checkpoint.on_tile] if checkpoint is not None else [])
            tiling = Tiling(lambda event: [hear(event) for hear in hears], resumed, where)
            result = stylize_run(run, callback=view, on_pass=view.start_pass, resume=resume, tiling=tiling)
    if checkpoint is not None and not result.status.stopped:
        checkpoint.clear()
    finish_run(result, output, report, quiet, previous)


def resume_command(
    report: Annotated[Path, typer.Argument(help="The --report of an interrupted stylize run.")],
    save_every: SaveEveryOption = 0,
    ray: RayOption = None,
    quiet: QuietOption = False,
) -> None:
    """Continue an interrupted `stylize` from its last saved image and iteration.

    The same inputs, options, output and report are used; L-BFGS restarts its curvature memory.
    A tiled pass goes on from the tiles it had finished (here, or with --ray on a Ray cluster).
    """
    try:
        previous = json.loads(report.read_text())
        config = config_from_dict(previous["config"])
        content, styles = Path(previous["inputs"]["content"]), [Path(p) for p in previous["inputs"]["styles"]]
        output = Path(previous["output"])
    except FileNotFoundError:
        raise NstError(f"{report}: no such report") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise NstError(f"{report}: not a report written by `nst-ort stylize --report`") from None
    if previous.get("status") != Status.INTERRUPTED:
        raise NstError(f"{report}: the run ended '{previous.get('status')}'; there is nothing to resume")
    engine = Engine(config.model, config.device, config.threads, backend=config.backend)
    run_stylize(engine, content, styles, config, output, report, save_every, quiet, previous, ray)
