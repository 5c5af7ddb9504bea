"""A clip's frames in order, each written as it finishes; the run's temporal-consistency measure.

The frames folder beside the output (OUT.mp4.frames/) holds each finished frame as a PNG and
its record as JSON, the record written last: it marks the frame done. A run that finds frames
done goes on at the first one missing, from the frame before it as written, so an interrupted
run resumes where it stopped; the video is encoded from the folder once every frame is there.
The folder also keeps the settings it was made with, and refuses another run's frames.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from nst_ort.config import Status
from nst_ort.errors import NstError
from nst_ort.files import write_text
from nst_ort.imageio import load_image, save_image
from nst_ort.loop import StepRecord
from nst_ort.passes import Pass, plan
from nst_ort.report import plain
from nst_ort.video import flow
from nst_ort.video.config import VideoConfig
from nst_ort.video.frames import FULL, WARPED, Stylizer, quantized
from nst_ort.video.media import Clip, read_frames

SETTINGS = "settings.json"


def frames_folder(output: Path) -> Path:
    """Where a run keeps the frames of `output` as they finish."""
    return output.with_name(output.name + ".frames")


def settings_of(config: VideoConfig, clip: Clip, styles: list[Path], size: tuple[int, int]) -> dict:
    """What decides the frames' pixels: a folder made with other settings is not resumed.

    Where and how the frames run (the range, the chunks, device, threads, backend) is left out:
    frames made one way are good for a run made another.
    """
    stylize = replace(config.stylize, device="auto", threads=0, backend="")
    kept = replace(config, stylize=stylize, frames=(0, None), chunk=0, overlap=0)
    return {
        "video": str(clip.path),
        "video_bytes": clip.path.stat().st_size,
        "styles": [str(path) for path in styles],
        "size": list(size),
        "config": plain(kept),
    }


def _difference(found: dict, wanted: dict, prefix: str = "") -> str | None:
    """The first setting that differs, by name (`config.temporal_weight`)."""
    for key in sorted(set(found) | set(wanted)):
        a, b = found.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _difference(a, b, f"{prefix}{key}.")
            if inner:
                return inner
        elif a != b:
            return f"{prefix}{key} {json.dumps(a)} against {json.dumps(b)} now"
    return None


class FrameStore:
    """The frames folder: frame_NNNNNN.png and .json per frame, and the settings."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def open(self, settings: dict) -> None:
        """Make the folder, or check that the one there was made with these settings."""
        if self.folder.exists() and not self.folder.is_dir():
            raise NstError(f"{self.folder}: exists and is not a folder")
        path = self.folder / SETTINGS
        if path.is_file():
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError):
                found = {}
            differs = _difference(found, json.loads(json.dumps(settings)))
            if differs:
                raise NstError(
                    f"{self.folder}: holds frames made with other settings ({differs}); "
                    "remove it or choose another output"
                )
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NstError(f"{self.folder}: cannot make the folder ({exc.strerror})") from None
        write_text(path, json.dumps(settings, indent=2) + "\n")

    def image_path(self, index: int) -> Path:
        return self.folder / f"frame_{index:06d}.png"

    def record_path(self, index: int) -> Path:
        return self.folder / f"frame_{index:06d}.json"

    def has(self, index: int) -> bool:
        return self.record_path(index).is_file() and self.image_path(index).is_file()

    def load(self, index: int) -> np.ndarray:
        return load_image(self.image_path(index))

    def record(self, index: int) -> dict:
        return json.loads(self.record_path(index).read_text())

    def save(self, index: int, image: np.ndarray, record: dict) -> None:
        save_image(self.image_path(index), image)
        write_text(self.record_path(index), json.dumps(record) + "\n")  # last: the frame is done

    def done(self, frames: range) -> int:
        return sum(self.has(index) for index in frames)

    def images(self, frames: range) -> Iterator[np.ndarray]:
        for index in frames:
            yield self.load(index)


class FrameView(Protocol):
    """What a caller hears of a run (the CLI's progress): each frame as it starts and ends,
    a full frame's passes, and every step (loop.Callback)."""

    def start_frame(self, index: int, kind: str, steps: int) -> None: ...

    def start_pass(self, current: Pass) -> None: ...

    def __call__(self, record: StepRecord, image: np.ndarray | None) -> None: ...

    def finish_frame(self, record: dict) -> None: ...


@dataclass
class Outcome:
    status: Status
    message: str
    computed: int  # frames stylised by this run (the others were done before)


def full_steps(stylizer: Stylizer) -> int:
    return sum(current.iterations for current in plan(stylizer.stylize))


def run_frames(
    stylizer: Stylizer,
    frames: Iterable[tuple[int, np.ndarray]],
    store: FrameStore,
    view: FrameView | None = None,
) -> Outcome:
    """Stylise each (index, content frame) not done yet in `store`, in order, writing each as it
    finishes. A frame that stops (interrupt, non-finite loss) is not written; the run ends there."""
    independent = stylizer.config.independent
    previous: tuple[np.ndarray, np.ndarray] | None = None  # (content, output) of the frame before
    computed = 0
    try:
        for index, content in frames:
            if store.has(index):
                previous = (content, store.load(index))
                continue
            kind = FULL if independent or previous is None else WARPED
            if view is not None:
                steps = full_steps(stylizer) if kind == FULL else stylizer.config.frame_iterations
                view.start_frame(index, kind, steps)
            if kind == FULL:
                on_pass = view.start_pass if view is not None else None
                result = stylizer.full(index, content, view, on_pass)
            else:
                result = stylizer.warped(index, content, *previous, view)
            if result.status.stopped:
                return Outcome(result.status, f"frame {index}: {result.message}", computed)
            store.save(index, result.image, result.record)  # its record last: then it is done
            computed += 1
            if view is not None:
                view.finish_frame(result.record)
            previous = (content, quantized(result.image))
    except KeyboardInterrupt:  # between two frames' loops (flow, saving): the frames done are kept
        return Outcome(Status.INTERRUPTED, "interrupted", computed)
    return Outcome(Status.DONE, "", computed)


def measure(clip: Clip, size: tuple[int, int], frames: range, outputs: Iterable[np.ndarray]) -> dict:
    """The temporal-consistency measure of a run: flow.warping_error of each pair of consecutive
    output frames, with the flow of the content frames; the same of the content frames
    themselves, the floor that flow errors and lighting leave."""
    output_errors, content_errors = [], []
    previous = None
    for (_, content), output in zip(read_frames(clip, *size, frames), outputs, strict=True):
        if previous is not None:
            moved = flow.motion(previous[0], content)
            output_errors.append(flow.warping_error(previous[1], output, moved))
            content_errors.append(flow.warping_error(previous[0], content, moved))
        previous = (content, output)
    return {
        "output": _mean(output_errors),
        "input": _mean(content_errors),
        "pairs": len(output_errors),
        "per_frame": [round(e, 6) for e in output_errors],  # frame i+1 against frame i
    }


def _mean(values: list[float]) -> float | None:
    kept = [v for v in values if np.isfinite(v)]
    return float(np.mean(kept)) if kept else None
