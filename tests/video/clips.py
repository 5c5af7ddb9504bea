"""Clips made in the tests with PyAV: a crop moving across a synthetic scene, with a tone."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

RATE = 24


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured RGB scene, float32 in [0, 1]: smooth gradients, stripes and blobs, so that the
    optical flow finds structure everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack(
        [
            0.5 + 0.4 * np.sin(x / 5.0) * np.cos(y / 7.0),
            0.5 + 0.4 * np.sin((x + 2 * y) / 9.0),
            0.5 + 0.4 * np.cos((x - y) / 6.0),
        ],
        axis=2,
    )
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 9)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - blob) + blob * rng.uniform(0, 1, 3).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def moving_frames(
    frames: int, height: int = 48, width: int = 64, shift: tuple[int, int] = (2, 1), seed: int = 0
) -> list[np.ndarray]:
    """Frame i: the scene's crop at (i·dy, i·dx), so each frame's content moves by -shift."""
    dx, dy = shift
    big = scene(height + abs(dy) * frames, width + abs(dx) * frames, seed)
    return [big[i * dy : i * dy + height, i * dx : i * dx + width] for i in range(frames)]


def write_clip(
    path: Path,
    frames: int = 6,
    height: int = 48,
    width: int = 64,
    shift: tuple[int, int] = (2, 1),
    rate: int = RATE,
    audio: bool = True,
    container: str | None = None,
) -> Path:
    """An H.264 clip of `moving_frames` at `rate`, with `audio` a stereo AAC tone as long."""
    import av

    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": "12"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac", rate=44100) if audio else None
        for image in moving_frames(frames, height, width, shift):
            pixels = (image * 255 + 0.5).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            samples = int(44100 * Fraction(frames, rate))
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[start : start + 1024]
                frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
                frame.sample_rate, frame.pts = 44100, start
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def audio_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*sound.encode(frame), *sound.encode()]:
            out.mux(packet)
    return path


def no_frames(path: Path) -> Path:
    """A Matroska file that declares a video stream but holds only audio packets."""
    import av

    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=8000)
        for i in range(3):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((2, 1024), np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return path


def unknown_codec(path: Path, tmp: Path) -> Path:
    """An MP4 whose video track's codec tag no decoder knows (its H.264 renamed)."""
    data = write_clip(tmp, frames=2, audio=False).read_bytes()
    path.write_bytes(data.replace(b"avc1", b"zzz9"))
    return path


def ffprobe(path: Path) -> dict:
    """What a real player's prober reads of the clip: each stream's codec, frames, duration."""
    import json
    import subprocess

    result = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-show_entries",
            "stream=codec_type,codec_name,nb_read_frames,duration,r_frame_rate,width,height,pix_fmt",
            "-of", "json", str(path),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}
