"""`stylize_video`: a clip in, a stylised clip out, with its report (the front end's API).

Everything that can be refused is checked before the first frame: the clip (media.probe), the
config (config.validate), the output, the styles, and the run itself (the Stylizer's prepare).
Frames go to the frames folder as they finish (sequence.py); once all are there the clip is
encoded from it and the temporal-consistency measure taken over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nst_ort.config import Status
from nst_ort.config import validate as check_stylize
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.report import plain, versions
from nst_ort.run import as_image
from nst_ort.studies import cluster
from nst_ort.video import media
from nst_ort.video.chunks import borders, chunk_size, plan_chunks, run_chunks
from nst_ort.video.config import VideoConfig, frame_range, validate
from nst_ort.video.frames import Stylizer
from nst_ort.video.sequence import FrameStore, FrameView, frames_folder, measure, run_frames, settings_of


@dataclass
class VideoResult:
    status: Status
    message: str
    report: dict  # what the run did; its frames, the measure once every frame is done
    frames: range  # the frames of the clip asked for
    folder: Path  # where the frames are


@dataclass(frozen=True)
class Prepared:
    """A checked video run, before its first frame."""

    clip: media.Clip
    config: VideoConfig
    frames: range
    size: tuple[int, int]  # (height, width) of the output frames
    styles: list[np.ndarray]
    store: FrameStore
    output: Path
    sources: list[str]  # the style files, as the report names them


def prepare_video(video: Path, styles: list[Path], output: Path, config: VideoConfig) -> Prepared:
    """Check the clip, the config and the output, load the styles, open the frames folder."""
    validate(config)  # what needs no clip fails before it is decoded
    media.check_output(output)
    clip = media.probe(video)
    if output.exists() and output.samefile(clip.path):
        raise NstError(f"{output}: is the input; choose another output path")
    validate(config, clip.frames)
    frames = frame_range(config, clip.frames)
    size = media.frame_size(clip.height, clip.width, config.stylize.size)
    style_images = [as_image(style) for style in styles]
    # The stylize config as the frames will run it, checked before the folder is made (the
    # model's layers are checked when the engine loads, before it too).
    check_stylize(replace(config.stylize, size=max(size)), styles=len(style_images), frame=size)
    store = FrameStore(frames_folder(output))
    store.open(settings_of(config, clip, [Path(p) for p in styles], size))
    return Prepared(clip, config, frames, size, style_images, store, output, [str(p) for p in styles])


def reference_frame(prepared: Prepared) -> np.ndarray:
    """The first frame of the range at the output size."""
    return next(media.read_frames(prepared.clip, *prepared.size, prepared.frames))[1]


def stylize_video(
    prepared: Prepared,
    engine: Engine | None = None,
    view: FrameView | None = None,
    runner: cluster.Cluster | None = None,
    on_chunk: Callable | None = None,
) -> VideoResult:
    """Stylise the frames not done yet, here with `engine` or on the Ray cluster `runner` (entered),
    then, if all are done, encode the output and measure it. An interrupt or a non-finite loss
    does not raise: the result says so, and the frames done stay in the folder."""
    started = time.time()
    clip, config, frames, size, store = (
        prepared.clip,
        prepared.config,
        prepared.frames,
        prepared.size,
        prepared.store,
    )
    reference = reference_frame(prepared)
    chunks = None
    if runner is None:
        engine = engine or Engine(
            config.stylize.model,
            config.stylize.device,
            config.stylize.threads,
            backend=config.stylize.backend,
        )
        stylizer = Stylizer(engine, config, prepared.styles, reference)
        outcome = run_frames(stylizer, media.read_frames(clip, *size, frames), store, view)
        model, device, backend = engine.model_info, engine.device, engine.backend
    else:
        runner.check(config.stylize)
        # Task slots: with `threads` 0 a task per CPU (cluster.threads_for shares them out).
        slots = sum(int(cpus) // (config.stylize.threads or 1) for cpus in runner.node_cpus())
        chunks = plan_chunks(
            frames, config.chunk or chunk_size(frames, slots, config.overlap), config.overlap
        )

        def content(chunk):
            return [image for _, image in media.read_frames(clip, *size, chunk.frames)]

        outcome = run_chunks(runner, config, chunks, content, prepared.styles, reference, store, on_chunk)
        model, device = runner.model_info, f"Ray cluster ({config.stylize.device.value})"
        # Each worker resolves `auto` for its own CPU or GPU (studies/cluster.py's engines).
        backend = config.stylize.backend
    report = {
        "status": outcome.status,
        "message": outcome.message,
        "config": plain(config),
        "inputs": {"video": str(clip.path), "styles": prepared.sources},
        "clip": {
            "frames": clip.frames,
            "rate": str(clip.rate),
            "duration": round(clip.duration, 6),
            "width": clip.width,
            "height": clip.height,
            "codec": clip.codec,
            "audio": clip.audio,
        },
        "size": list(size),
        "range": [frames.start, frames.stop],
        "model": model.as_dict(),
        "device": device,
        "backend": backend,  # the one that ran locally: config.stylize.backend may be auto
        "versions": versions(),
        "frames_folder": str(store.folder),
        "computed": outcome.computed,
        "frames": [store.record(i) for i in frames if store.has(i)],
    }
    if chunks is not None:
        report["chunks"] = [[c.start, c.own, c.stop] for c in chunks]
    if outcome.status is Status.DONE:
        media.write_clip(prepared.output, store.images(frames), clip, frames)
        report["output"] = str(prepared.output)
        report["temporal_error"] = measure(clip, size, frames, store.images(frames))
        if chunks is not None:
            report["temporal_error"].update(
                split_at_borders(report["temporal_error"]["per_frame"], frames, chunks)
            )
    report["total_seconds"] = round(time.time() - started, 3)
    return VideoResult(outcome.status, outcome.message, report, frames, store.folder)


def split_at_borders(per_frame: list[float], frames: range, chunks) -> dict:
    """The measure where chunks meet (their fades included) and inside them."""
    crossing = borders(chunks)
    at, inside = [], []
    for t, error in zip(frames[1:], per_frame, strict=True):
        (at if t in crossing else inside).append(error)
    return {
        "borders": float(np.mean(at)) if at else None,
        "inside": float(np.mean(inside)) if inside else None,
    }
