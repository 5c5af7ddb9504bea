"""`nst-ort batch`: many photos in one or more styles, as a grid of content x style cells."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from PIL import Image

from nst_ort import layerspec
from nst_ort.cli.cells import check_folder, make_runner, run_cells
from nst_ort.cli.options import (
    STYLIZE,
    BackendOption,
    ContentLayersOption,
    ContentWeightOption,
    DeviceOption,
    EmaDecayOption,
    InitOption,
    IterationsOption,
    JobsOption,
    LrOption,
    MinScaleOption,
    ModelOption,
    NormalizeOption,
    OptimizerOption,
    OutputFolderOption,
    PreserveColorsOption,
    QuietOption,
    RayOption,
    ScaleIterationsOption,
    ScalesOption,
    SeedOption,
    SizeOption,
    StyleBlurOption,
    StyleLayersOption,
    StyleLossOption,
    StyleScaleOption,
    StyleWeightOption,
    ThreadsOption,
    TvChromaOption,
    TvWeightOption,
    ints,
    loss_from_options,
)
from nst_ort.config import StylizeConfig, parse_init
from nst_ort.errors import NstError
from nst_ort.studies.grid import make_batch


def image_files(paths: list[Path]) -> list[Path]:
    """The files given, a folder standing for the images in it (by extension, sorted by name).

    A file that is missing stops the command here; one that is there but not an image fails
    its cells alone when they run.
    """
    Image.init()
    readable = {ext for ext, name in Image.registered_extensions().items() if name in Image.OPEN}
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in readable and p.name[0] != "."
            )
            if not inside:
                raise NstError(f"{path}: no images in this folder")
            found += inside
        elif not path.exists():
            raise NstError(f"{path}: no such file")
        else:
            found.append(path)
    return found


def batch_command(
    content: Annotated[list[Path], typer.Argument(help="Content photos, or folders of them.")],
    style: Annotated[
        list[Path],
        typer.Option("--style", "-s", help="A style image or a folder of them; repeat for more styles."),
    ],
    output_dir: OutputFolderOption,
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
    style_scale: StyleScaleOption = STYLIZE.style_scale,
    style_blur: StyleBlurOption = STYLIZE.style_blur,
    scales: ScalesOption = STYLIZE.scales,
    scale_iterations: ScaleIterationsOption = STYLIZE.scale_iterations,
    min_scale: MinScaleOption = STYLIZE.min_scale,
    ema_decay: EmaDecayOption = STYLIZE.ema_decay,
    preserve_colors: PreserveColorsOption = STYLIZE.preserve_colors,
    jobs: JobsOption = 1,
    ray: RayOption = None,
    device: DeviceOption = STYLIZE.device,
    threads: ThreadsOption = STYLIZE.threads,
    backend: BackendOption = STYLIZE.backend,
    quiet: QuietOption = False,
) -> None:
    """Stylise every CONTENT photo with every --style image, with stylize's settings.

    The folder gets each result under cells/ (named PHOTO.STYLE-KEY.png, with its report), a
    sheet.png of photos down the side and styles across, results.csv and results.json.
    Re-running into the same folder, with more photos or styles or not, skips the results
    already there; a photo that cannot be read fails its cells alone. With --ray the cells run
    on a Ray cluster and only this process writes files.
    """
    check_folder(output_dir)
    contents, styles = image_files(content), image_files(style)
    runner = make_runner(model, device, threads, backend, jobs, ray)
    loss = loss_from_options(
        runner.model_info,
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
        style_scale=style_scale,
        style_blur=style_blur,
        scales=ints(scales, "scales"),
        scale_iterations=ints(scale_iterations, "scale_iterations"),
        min_scale=min_scale,
        ema_decay=ema_decay,
        preserve_colors=preserve_colors,
        device=device,
        threads=threads,
        backend=backend,
    )
    batch = make_batch(contents, styles, config)
    run_cells(batch, output_dir, runner, quiet)
