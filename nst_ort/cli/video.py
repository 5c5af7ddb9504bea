"""`nst-ort video`: a stylised clip that does not flicker (Ruder, Dosovitskiy & Brox 2016)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nst_ort import contract, errors, layerspec
from nst_ort.cli.options import (
    BackendOption,
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
    PreserveColorsOption,
    QuietOption,
    RayOption,
    ReportOption,
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
    TvChromaOption,
    TvWeightOption,
    floats,
    ints,
    loss_from_options,
)
from nst_ort.cli.outputs import check_output_file
from nst_ort.cli.progress import err, interrupt_on_sigterm, out
from nst_ort.config import Status, StylizeConfig, parse_init
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.files import write_text
from nst_ort.loop import StepRecord
from nst_ort.passes import Pass
from nst_ort.report import plain
from nst_ort.studies import cluster
from nst_ort.video.config import DEFAULTS, VideoConfig, parse_frames
from nst_ort.video.frames import FULL
from nst_ort.video.run import prepare_video, stylize_video

VIDEO = DEFAULTS
STYLIZE = DEFAULTS.stylize
AGAIN = "; run the same command again to go on"

VideoArgument = Annotated[Path, typer.Argument(help="The clip to stylise: any file FFmpeg reads.")]
OutputVideoOption = Annotated[
    Path,
    typer.Option(
        "-o",
        "--output",
        help="Output clip (.mp4, .m4v, .mov or .mkv): H.264 at the input's frame rate, its audio "
        "copied; the frames go to OUTPUT.frames/ as they finish.",
    ),
]
FramesOption = Annotated[
    str | None, typer.Option(help="Frames to stylise, START:END (END excluded, from 0; START: or :END).")
]
TemporalWeightOption = Annotated[
    float,
    typer.Option(help="λ, the temporal loss weight: how closely a frame follows the previous one, warped."),
]
FrameIterationsOption = Annotated[
    int, typer.Option(help="Adam steps of each frame after the first (one pass at --size).")
]
IndependentOption = Annotated[
    bool,
    typer.Option(
        help="Stylise every frame on its own with the first frame's schedule (flickers: the baseline)."
    ),
]
ChunkOption = Annotated[
    int,
    typer.Option(help="With --ray: frames per chunk, one task each (0: the frames split among the cluster)."),
]
OverlapOption = Annotated[
    int, typer.Option(help="With --ray: frames a chunk shares with the next, faded from one to the other.")
]


def video_command(
    video: VideoArgument,
    styles: StylesArgument,
    output: OutputVideoOption,
    frames: FramesOption = None,
    temporal_weight: TemporalWeightOption = VIDEO.temporal_weight,
    frame_iterations: FrameIterationsOption = VIDEO.frame_iterations,
    independent: IndependentOption = VIDEO.independent,
    ray: RayOption = None,
    chunk: ChunkOption = VIDEO.chunk,
    overlap: OverlapOption = VIDEO.overlap,
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
    ema_decay: EmaDecayOption = STYLIZE.ema_decay,
    preserve_colors: PreserveColorsOption = STYLIZE.preserve_colors,
    device: DeviceOption = STYLIZE.device,
    threads: ThreadsOption = STYLIZE.threads,
    backend: BackendOption = STYLIZE.backend,
    report: ReportOption = None,
    quiet: QuietOption = False,
) -> None:
    """Stylise the clip VIDEO with STYLES, frame by frame without flicker (Ruder et al. 2016).

    The first frame runs as `stylize` would; each later one starts from the previous result
    warped by the optical flow and keeps to it where nothing is occluded (a temporal loss), in
    --frame-iterations steps. Frames are written to OUTPUT.frames/ as they finish: run the same
    command again after an interrupt and it goes on at the first frame missing.
    """
    video, styles, output = video.absolute(), [p.absolute() for p in styles], output.absolute()
    model, report = (p.absolute() if p is not None else None for p in (model, report))
    if report is not None:
        check_output_file(report, [video, *styles, output])
    if ray is None:
        runner = None
        engine = Engine(model, device, threads, backend=backend)
        info = engine.model_info
    else:
        cluster.require_ray()
        engine, runner = None, cluster.Cluster(model, ray)
        info = runner.model_info
    loss = loss_from_options(
        info,
        content_layers,
        style_layers,
        content_weight,
        style_weight,
        tv_weight,
        normalize,
        style_loss,
        tv_chroma,
    )
    stylize = StylizeConfig(
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
        ema_decay=ema_decay,
        preserve_colors=preserve_colors,
        device=device,
        threads=threads,
        backend=backend,
    )
    config = VideoConfig(
        stylize=stylize,
        temporal_weight=temporal_weight,
        frame_iterations=frame_iterations,
        frames=parse_frames(frames),
        independent=independent,
        chunk=chunk,
        overlap=overlap,
    )
    prepared = prepare_video(video, styles, output, config)
    done = prepared.store.done(prepared.frames)
    if not quiet:
        clip, (height, width) = prepared.clip, prepared.size
        where = f"device: {engine.device}; backend: {engine.backend}" if engine is not None else "on Ray"
        err.print(
            f"video: {len(prepared.frames)} of {clip.frames} frames at {width}x{height}, {clip.rate} fps"
            f"{f'; {done} done before' if done else ''}; {where}; model: {info.path} ({info.weights})",
            highlight=False,
        )
    interrupt_on_sigterm()
    try:
        with VideoView(len(prepared.frames), done, quiet) as view:
            if runner is None:
                result = stylize_video(prepared, engine, view)
            else:
                with runner:
                    if not quiet:
                        err.print(runner.describe(), highlight=False)
                    result = stylize_video(prepared, runner=runner, on_chunk=view.finish_chunk)
    except KeyboardInterrupt:  # before the first frame or while encoding: every frame done is kept
        err.print(f"interrupted; the frames done are kept in {prepared.store.folder}{AGAIN}", highlight=False)
        raise typer.Exit(errors.INTERRUPTED) from None
    if report is not None:
        write_text(report, _json(result.report))
    finish(result, output, quiet)


def _json(data: dict) -> str:
    return json.dumps(plain(data), indent=2) + "\n"


def finish(result, output: Path, quiet: bool) -> None:
    """The run's line, and its exit code for a run that stopped."""
    data = result.report
    if result.status is Status.INTERRUPTED:
        err.print(
            f"interrupted after {data['computed']} frames stylised now, {len(data['frames'])} of "
            f"{len(result.frames)} done (kept in {result.folder}){AGAIN}",
            highlight=False,
        )
        raise typer.Exit(errors.INTERRUPTED)
    if result.status is not Status.DONE:
        raise NstError(
            f"stopped: {result.message}; the frames before it are kept in {result.folder}", errors.FAILURE
        )
    if not quiet:
        measured = data["temporal_error"]
        line = (
            f"done: {output} ({len(result.frames)} frames) in {data['total_seconds']:.1f} s, "
            f"{data['computed']} stylised now; temporal error {_number(measured['output'])} "
            f"(the input's own {_number(measured['input'])})"
        )
        if "borders" in measured:
            line += f"; at chunk borders {_number(measured['borders'])}, inside {_number(measured['inside'])}"
        out.print(line, highlight=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


class VideoView:
    """Progress: a bar over the frames, and one over the current frame's steps (sequence.FrameView)."""

    def __init__(self, frames: int, done: int, quiet: bool):
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        self.overall = self.progress.add_task("frames", total=frames, completed=done, info="")
        self.current = None
        self.offset = 0  # steps of a full frame's earlier passes

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start_frame(self, index: int, kind: str, steps: int) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
        how = "full schedule" if kind == FULL else "from the previous"
        self.current = self.progress.add_task(f"frame {index} ({how})", total=steps, info="")
        self.offset = 0

    def start_pass(self, current: Pass) -> None:
        if current.count > 1 and self.current is not None:
            self.progress.update(
                self.current, info=f"scale {current.index + 1}/{current.count}: {current.size} px"
            )

    def __call__(self, record: StepRecord, image: np.ndarray | None) -> None:
        if self.current is not None:
            loss = record.terms.get(contract.LOSS, float("nan"))
            self.progress.update(self.current, completed=record.step, info=f"loss {loss:.4g}")

    def finish_frame(self, record: dict) -> None:
        self.progress.advance(self.overall)
        self.progress.update(self.overall, info=f"last {record['seconds']:.1f} s")

    def finish_chunk(self, chunk, records: dict) -> None:
        """A chunk back from the cluster: its own frames are done (the shared ones count once)."""
        self.progress.advance(self.overall, chunk.own - chunk.start)
        if not self.quiet:
            seconds = sum(r["seconds"] for r in records.values())
            self.progress.console.print(f"{chunk.label}: done, {seconds:.1f} s of frames", highlight=False)
