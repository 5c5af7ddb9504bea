"""What a video run is asked to do: a StylizeConfig for each frame, and the temporal settings.

Defaults are written here once (the CLI reads them from DEFAULTS); `validate` refuses what cannot
run, naming the field in backticks (`temporal_weight`), which the CLI shows as its option.
Nothing here needs PyAV or OpenCV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from nst_ort.config import PreserveColors, StylizeConfig
from nst_ort.errors import NstError

# Longest side of the output: 256 px keeps a clip of a few seconds within an hour on a CPU.
VIDEO_SIZE = 256


@dataclass(frozen=True)
class VideoConfig:
    """Ruder, Dosovitskiy & Brox 2016: each frame after the first starts from the previous result,
    warped by the optical flow, with a temporal loss that keeps it there where nothing is occluded."""

    # The first frame (and, with `independent`, every frame) is a plain run of this config.
    stylize: StylizeConfig = field(default_factory=lambda: StylizeConfig(size=VIDEO_SIZE))
    # λ of the temporal term λ·Σc(x−w)²/D, per value as the other normalised terms are
    # (temporal.TemporalObjective). Measured at 128 px over 10 frames (README, "Video"): 300
    # brings the temporal error below the input clip's own (flow and resampling set that floor)
    # with the style loss flat from frame to frame; 1000 and more lower the error further but
    # hold each frame so close to the last that the style loss creeps up frame by frame.
    temporal_weight: float = 300.0
    # Adam steps of each later frame, one pass at the output size, from the warped previous
    # result: that start is already stylised, so far fewer than a first frame's. 20 left three
    # times the temporal error of 50; 100 lowered it by 40% for twice the time.
    frame_iterations: int = 50
    # START and END (None: the last frame) of the frames to stylise, END excluded, 0-based.
    frames: tuple[int, int | None] = (0, None)
    # Every frame on its own, with the first frame's schedule and no temporal term: the
    # frame-by-frame baseline that flickers.
    independent: bool = False
    # On a Ray cluster: frames per chunk (0: the range split evenly among the cluster's task
    # slots) and frames each chunk runs on into the next, cross-faded (chunks.py).
    chunk: int = 0
    overlap: int = 4

    def with_stylize(self, **changes) -> VideoConfig:
        return replace(self, stylize=replace(self.stylize, **changes))


DEFAULTS = VideoConfig()


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """`START:END`, `START:` or `:END` (END excluded, 0-based); None: every frame."""
    if text is None:
        return DEFAULTS.frames
    start, colon, end = text.partition(":")
    try:
        if not colon:
            raise ValueError
        first = int(start) if start.strip() else 0
        last = int(end) if end.strip() else None
    except ValueError:
        raise NstError(f"`frames` {text!r}: expected START:END, START: or :END (whole numbers)") from None
    return first, last


def format_frames(frames: tuple[int, int | None]) -> str:
    start, end = frames
    return f"{start}:{'' if end is None else end}"


def frame_range(config: VideoConfig, count: int) -> range:
    """The frames of a clip of `count` frames that `config` asks for (validated)."""
    start, end = config.frames
    return range(start, count if end is None else min(end, count))


def validate(config: VideoConfig, count: int | None = None) -> None:
    """Refuse, with one line naming the field, what cannot run; `count`: the clip's frames."""
    if not math.isfinite(config.temporal_weight) or config.temporal_weight < 0:
        raise NstError(f"`temporal_weight` {config.temporal_weight}: must be a finite number, 0 or more")
    if config.frame_iterations < 1:
        raise NstError(f"`frame_iterations` {config.frame_iterations}: at least 1")
    start, end = config.frames
    text = format_frames(config.frames)
    if start < 0 or (end is not None and end < 0):
        raise NstError(f"`frames` {text}: frame numbers start at 0")
    if end is not None and end <= start:
        raise NstError(f"`frames` {text}: END must be after START")
    if count is not None and start >= count:
        raise NstError(f"`frames` {text}: the clip has {count} frames (0 to {count - 1})")
    if config.chunk < 0:
        raise NstError(f"`chunk` {config.chunk}: 0 (split among the cluster) or more frames")
    if PreserveColors(config.stylize.preserve_colors) is PreserveColors.PAINTING:
        # A later frame starts from the one before, finished: recoloured again on each frame,
        # the colours would drift from frame to frame.
        raise NstError("`preserve_colors` painting: not for video; it is for still pictures")
    if config.overlap < 0:
        raise NstError(f"`overlap` {config.overlap}: 0 or more frames")
    if config.chunk and config.overlap >= config.chunk:
        raise NstError(f"`overlap` {config.overlap}: must be less than `chunk` {config.chunk}")
