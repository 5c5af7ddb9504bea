"""`nst-ort bundle` and `nst-ort run-bundle`: write a self-contained bundle, run one in Python."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import contract, errors
from nst_ort.cli import (
    ContentLayersOption,
    ContentWeightOption,
    ModelOption,
    ProgressView,
    SeedOption,
    SizeOption,
    StyleBlendOption,
    StyleLayersOption,
    StyleScaleOption,
    StyleWeightOption,
    ThreadsOption,
    TvWeightOption,
    _check_finite,
    _check_output,
    _floats,
    _init,
    _interrupt_on_sigterm,
    app,
    err,
    loss_from_options,
    out,
)
from nst_ort.config import Device, StylizeConfig
from nst_ort.errors import NstError


@app.command("bundle")
def bundle_command(
    content: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Content photo.")],
    styles: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="One or more style images.")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", file_okay=False, help="Bundle folder to create (new or empty).")
    ],
    model: ModelOption = None,
    size: SizeOption = 512,
    iterations: Annotated[int, typer.Option(min=1, help="Adam steps the bundle recommends.")] = 500,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate on [0, 1] pixels, fixed in the bundle.")
    ] = 0.02,
    init: Annotated[str, typer.Option(help="noise (the paper), content, style, or an image file.")] = "noise",
    seed: SeedOption = 0,
    content_weight: ContentWeightOption = 1.0,
    style_weight: StyleWeightOption = 1e4,
    tv_weight: TvWeightOption = 0.0,
    content_layers: ContentLayersOption = ",".join(contract.DEFAULT_CONTENT_LAYERS),
    style_layers: StyleLayersOption = None,
    style_blend: StyleBlendOption = None,
    style_scale: StyleScaleOption = 1.0,
    device: Annotated[Device, typer.Option(help="Where the targets are computed.")] = Device.AUTO,
    threads: ThreadsOption = 0,
) -> None:
    """Write a self-contained folder (ONNX Runtime training artifacts, bundle.json) for one run."""
    from nst_ort.bundle import make_bundle
    from nst_ort.engine import Engine

    _check_finite(content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    _check_finite(lr=lr, style_scale=style_scale)
    engine = Engine(model, device.value, threads, backend="ort-training")  # bundles are its artifacts
    loss = loss_from_options(engine, content_layers, style_layers, content_weight, style_weight, tv_weight)
    config = StylizeConfig(
        model=model,
        size=size,
        iterations=iterations,
        lr=lr,
        init=_init(init),
        seed=seed,
        loss=loss,
        style_blend=_floats(style_blend, "--style-blend"),
        style_scale=style_scale,
        device=device,
        threads=threads,
    )
    with err.status("computing targets and writing the bundle"):
        info = make_bundle(content, styles, output, config, engine)
    out.print(
        f"wrote {info.directory} ({info.bytes / 1e6:.1f} MB, {info.width}x{info.height} px, "
        f"Adam lr {lr:g}, {iterations} steps); run it with: nst-ort run-bundle {info.directory} -o OUT.png",
        highlight=False,
        soft_wrap=True,
    )


@app.command("run-bundle")
def run_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `nst-ort bundle`.")],
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, help="Output image (.png, …).")],
    iterations: Annotated[int | None, typer.Option(min=0, help="Adam steps (default: the bundle's).")] = None,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads; 0 = one per core.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run a bundle with the Python reference driver (onnxruntime-training, numpy, Pillow only)."""
    from nst_ort import bundle_driver
    from nst_ort.imageio import save_image
    from nst_ort.loop import StepRecord

    try:
        loaded = bundle_driver.load_bundle(bundle)
    except bundle_driver.BundleError as exc:
        raise NstError(str(exc)) from None
    _check_output(output, [loaded.path(role) for role in loaded.manifest["files"]])
    total = loaded.iterations if iterations is None else iterations
    _interrupt_on_sigterm()
    start = time.perf_counter()
    with ProgressView(total, quiet, 0, output) as view:

        def on_step(step: int, losses: dict[str, float]) -> None:
            view(StepRecord(step, step, losses, time.perf_counter() - start), None)

        result = bundle_driver.run_bundle(bundle, iterations, threads, on_step)
    save_image(output, result.image)
    if result.status == "nonfinite":
        raise NstError(f"stopped: {result.message}; last good image saved to {output}", errors.FAILURE)
    if result.status == "interrupted":
        err.print(f"interrupted: last image saved to {output}", highlight=False)
        raise typer.Exit(errors.INTERRUPTED)
    if not quiet:
        final = result.losses[-1] if result.losses else {}
        out.print(
            f"{result.status}: {output} in {time.perf_counter() - start:.1f} s, {len(result.losses)} steps; "
            f"loss {final.get(contract.LOSS, float('nan')):.4g}",
            highlight=False,
        )
