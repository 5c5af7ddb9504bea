"""Clips in and out with PyAV (FFmpeg's libraries, bundled in its wheels): probe, decode, encode.

Frames come out as float32 RGB in [0, 1] at the size the run works at, and go back in as H.264
(libx264) in yuv420p, whose chroma planes need even sizes, at the input's frame rate. The input's
audio is copied through without re-encoding where the container takes it, cut to the frames
asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.files import atomic_path
from nst_ort.imageio import fit_longest, resize, to_uint8

INSTALL_HINT = "pip install 'nst-ort[video]'"
# Output containers that take H.264, by extension, as FFmpeg names their muxers.
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# libx264's constant-quality setting: 18 is about visually lossless, so the encoding adds no
# flicker of its own to what the temporal term removed.
CRF = "18"


def require_av():
    """The av module, or one line that says how to install it."""
    try:
        import av
    except ImportError:
        raise NstError(f"PyAV is not installed; {INSTALL_HINT}") from None
    return av


@dataclass(frozen=True)
class Clip:
    """What a video file holds, as far as a run needs to know."""

    path: Path
    frames: int
    rate: Fraction  # frames per second
    height: int
    width: int
    codec: str
    audio: str | None  # the first audio stream's codec; None without audio

    @property
    def duration(self) -> float:
        return float(self.frames / self.rate)


def check_output(path: Path) -> str:
    """The FFmpeg muxer for an output path, refused before any work if it cannot be written."""
    container = CONTAINERS.get(path.suffix.lower())
    if path.is_dir():
        raise NstError(f"{path}: is a directory")
    if container is None:
        raise NstError(f"{path}: unknown video extension '{path.suffix}' (use {', '.join(CONTAINERS)})")
    if not path.parent.is_dir():
        raise NstError(f"{path.parent}: no such folder")
    return container


def _open(path: Path):
    av = require_av()
    if not path.exists():
        raise NstError(f"{path}: no such file")
    if path.is_dir():
        raise NstError(f"{path}: is a directory, not a video")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise NstError(f"{path}: not a video FFmpeg can read ({reason})") from None


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise NstError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # FFmpeg knows the container but not the codec
        raise NstError(f"{path}: unknown video codec; FFmpeg has no decoder for it")
    return stream


def probe(path: Path) -> Clip:
    """Open `path` and count its frames by decoding them (a container's own count can be
    missing or wrong); one line for a file that is no video, has no frames, or cannot be decoded."""
    av = require_av()
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        frames = 0
        try:
            for _ in container.decode(stream):
                frames += 1
        except av.error.FFmpegError as exc:
            if not frames:
                raise NstError(
                    f"{path}: cannot decode its {stream.codec_context.name} video ({exc})"
                ) from None
        if frames == 0:
            raise NstError(f"{path}: has no frames")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise NstError(f"{path}: has no frame rate")
        audio = container.streams.audio[0].codec_context if container.streams.audio else None
        return Clip(
            path,
            frames,
            Fraction(rate),
            stream.codec_context.height,
            stream.codec_context.width,
            stream.codec_context.name,
            None if audio is None else audio.name,
        )


def frame_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) of the stylised frames: the longest side `size`, both sides even
    (yuv420p); refused if a side would have fewer than MIN_SIDE px."""
    h, w = fit_longest(height, width, size)
    h, w = h - h % 2, w - w % 2
    if min(h, w) < MIN_SIDE:
        raise NstError(
            f"`size` {size} makes {width}x{height} frames {w}x{h}; at least {MIN_SIDE} px per side"
        )
    return h, w


def read_frames(clip: Clip, height: int, width: int, frames: range) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) for each frame in `frames`, float32 RGB in [0, 1] at height x width."""
    with _open(clip.path) as container:
        stream = _video_stream(container, clip.path)
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index >= frames.stop:
                return
            if index >= frames.start:
                pixels = frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0
                yield index, resize(pixels, height, width)


def write_clip(
    path: Path, images: Iterable[np.ndarray], clip: Clip, frames: range, audio: bool = True
) -> None:
    """Encode `images` (float32 RGB, even sizes) as H.264 at the clip's rate into `path`, atomically,
    with the clip's audio over the same frames (`audio`)."""
    av = require_av()
    container_format = check_output(path)
    rate = clip.rate
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=container_format) as out:
        video = None
        sound = _AudioCopy(clip, frames, out) if audio and clip.audio else None
        for i, image in enumerate(images):
            if video is None:
                video = out.add_stream("libx264", rate=rate, options={"crf": CRF})
                video.height, video.width = image.shape[:2]
                video.pix_fmt = "yuv420p"
                if sound is not None:
                    sound.start()
            frame = av.VideoFrame.from_ndarray(to_uint8(image), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            if sound is not None:
                sound.mux_until(i / rate)  # interleaved by time, as players read them
            for packet in video.encode(frame):
                out.mux(packet)
        if video is None:
            raise NstError(f"{path}: no frames to write")
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            sound.mux_until(None)


class _AudioCopy:
    """The input's first audio stream over the frames' time span, copied packet by packet."""

    def __init__(self, clip: Clip, frames: range, out):
        self.out = out
        self.container = _open(clip.path)
        self.source = self.container.streams.audio[0]
        self.begin = frames.start / clip.rate  # seconds
        self.end = frames.stop / clip.rate
        self.stream = None
        self.packets = None

    def start(self) -> None:
        """Add the audio stream to the output (before its header is written)."""
        self.stream = self.out.add_stream_from_template(self.source)
        self.packets = self.container.demux(self.source)

    def mux_until(self, seconds: Fraction | None) -> None:
        """Copy the packets that start before `seconds` (None: all that are left)."""
        base = self.source.time_base
        shift = round(self.begin / base)
        for packet in self.packets:
            if packet.dts is None:  # the demuxer's flush packet
                continue
            at = (packet.pts if packet.pts is not None else packet.dts) * base
            # Packets before the first frame are left out, but for the encoder's priming ones
            # (negative times) where the run starts at the clip's beginning.
            if at >= self.end:
                break
            if at >= self.begin or self.begin == 0:
                if packet.pts is not None:
                    packet.pts -= shift
                packet.dts -= shift
                packet.stream = self.stream
                self.out.mux(packet)
            if seconds is not None and at >= seconds:
                return
        self.container.close()
        self.packets = iter(())
