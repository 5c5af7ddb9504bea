"""Video: the temporal error of Ruder et al.'s frames against independent per-frame stylisation.

Bar: on a clip made from a photo with a moving crop (48 frames at 256 px), the temporal error
(flow.warping_error: the mean squared RGB difference between each output frame and the one
before, warped by the content's flow, over the pixels the consistency check keeps) of
`nst-ort video` is at most half that of the same frames stylised independently, each with the
first frame's schedule (`--independent`). Both run here, one after the other, on one engine.

Uses the default model in the user cache (`nst-ort export`, the HED VGG-16) when there is one,
else a random-weight export (which needs torch); tubingen.jpg and starry_night.jpg from
../shared/images when present, else synthetic images. The clip is a crop of 60% of the photo
moving 3 px right and 1 px down per frame. NST_BENCH_VIDEO_FRAMES (default 48),
NST_BENCH_VIDEO_SIZE (256), NST_BENCH_VIDEO_ITERATIONS (the first frame's and each independent
frame's, default the video config's) and NST_BENCH_VIDEO_FRAME_ITERATIONS (each later frame's,
default the video config's) set the run; NST_BENCH_VIDEO_OUTPUT names a folder that keeps both
clips, their frames and their reports (default: pytest's temporary folder). The independent
frames take most of the time (hours on 2 cores). Where ffprobe is installed, it must read both
clips with the right frame count and duration (a real player's prober):

    NST_BENCH_VIDEO_FRAMES=48 NST_BENCH_VIDEO_OUTPUT=/tmp/video48 \
        nice -n 10 python -m pytest benchmarks/test_video.py -s --bench-video
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nst_ort.contract import LOSS_STYLE
from nst_ort.engine import Engine
from nst_ort.imageio import load_image, resize, save_image, to_uint8
from nst_ort.paths import default_model_path
from nst_ort.report import plain
from nst_ort.video.config import DEFAULTS
from nst_ort.video.run import prepare_video, stylize_video

DEFAULT_MODEL = default_model_path()  # resolved before any fixture points NST_ORT_CACHE elsewhere
SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
FRAMES = int(os.environ.get("NST_BENCH_VIDEO_FRAMES", "48"))
SIZE = int(os.environ.get("NST_BENCH_VIDEO_SIZE", "256"))
ITERATIONS = int(os.environ.get("NST_BENCH_VIDEO_ITERATIONS", str(DEFAULTS.stylize.iterations)))
FRAME_ITERATIONS = int(os.environ.get("NST_BENCH_VIDEO_FRAME_ITERATIONS", str(DEFAULTS.frame_iterations)))
STEP = (3, 1)  # px per frame at the clip's size, (right, down)


@pytest.fixture(scope="module")
def model(tmp_path_factory, pytestconfig) -> Path:
    pytest.importorskip("av", reason="needs PyAV and OpenCV (the video extra)")
    pytest.importorskip("cv2", reason="needs PyAV and OpenCV (the video extra)")
    if not pytestconfig.getoption("--bench-quick") and not pytestconfig.getoption("--bench-video"):
        pytest.skip(f"{FRAMES} frames at {SIZE} px, twice, hours on 2 cores: run with --bench-video")
    if DEFAULT_MODEL.is_file() and not pytestconfig.getoption("--bench-quick"):
        return DEFAULT_MODEL
    try:
        from export.exporter import ExportSpec, export_model
        from export.weights import random_weights
    except ImportError:
        pytest.skip("no default model in the cache and no torch to export random weights")
    from nst_ort.contract import Arch

    path = tmp_path_factory.mktemp("models") / "random.onnx"
    export_model(path, ExportSpec(), random_weights(Arch.VGG16, seed=0))
    return path


def _images() -> tuple[np.ndarray, np.ndarray, str]:
    content, style = SHARED_IMAGES / "tubingen.jpg", SHARED_IMAGES / "starry_night.jpg"
    if content.is_file() and style.is_file():
        return load_image(content), load_image(style), "tubingen.jpg + starry_night.jpg"
    y, x = np.mgrid[0:768, 0:1024].astype(np.float32)
    photo = np.stack([x / 1024, y / 768, 0.5 + 0.5 * np.sin((x + y) / 23)], axis=2)
    painting = np.stack([np.sin(x / 9) ** 2, np.cos(y / 13) ** 2, np.sin((x - y) / 17) ** 2], axis=2)
    return photo.astype(np.float32), painting.astype(np.float32), "synthetic images"


def photo_clip(path: Path, photo: np.ndarray, frames: int, size: int) -> Path:
    """A crop of 60% of `photo` moving STEP px per frame at the clip's size, as H.264 at 24 fps."""
    import av

    height, width = photo.shape[:2]
    crop_h, crop_w = int(height * 0.6), int(width * 0.6)
    scale = size / max(crop_h, crop_w)
    out_h, out_w = round(crop_h * scale) // 2 * 2, round(crop_w * scale) // 2 * 2
    if (frames - 1) * STEP[0] / scale > width - crop_w or (frames - 1) * STEP[1] / scale > height - crop_h:
        raise ValueError(f"{frames} frames run off the photo")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "16"})
        stream.width, stream.height, stream.pix_fmt = out_w, out_h, "yuv420p"
        for i in range(frames):
            y0, x0 = round(i * STEP[1] / scale), round(i * STEP[0] / scale)
            crop = resize(photo[y0 : y0 + crop_h, x0 : x0 + crop_w], out_h, out_w)
            for packet in stream.encode(av.VideoFrame.from_ndarray(to_uint8(crop), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _run(clip: Path, style: Path, output: Path, config, engine) -> tuple[dict, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = stylize_video(prepare_video(clip, [style], output, config), engine)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.status == "done", result.message
    output.with_suffix(".json").write_text(json.dumps(plain(result.report), indent=2) + "\n")
    return result.report, wall, cpu


def _probed(path: Path) -> dict | None:
    """Frames and duration of the clip's video stream as ffprobe counts them; None without it."""
    if shutil.which("ffprobe") is None:
        return None
    command = [
        "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
        "stream=nb_read_frames,duration,r_frame_rate", "-of", "json", str(path),
    ]  # fmt: skip
    found = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    stream = json.loads(found)["streams"][0]
    return {
        "frames": int(stream["nb_read_frames"]),
        "duration": float(stream["duration"]),
        "rate": stream["r_frame_rate"],
    }


def _style_losses(report: dict, kind: str) -> list[float]:
    return [f[LOSS_STYLE] for f in report["frames"] if f["kind"] == kind and LOSS_STYLE in f]


def _seconds(report: dict, kind: str) -> float | None:
    seconds = [f["seconds"] for f in report["frames"] if f["kind"] == kind]
    return round(float(np.mean(seconds)), 2) if seconds else None


def test_temporal_error_against_independent_frames(benchmark, model, request, tmp_path):
    # --bench-quick (CI) only keeps the code path running: 32 px, 4 frames, a few steps, no bar.
    quick = request.config.getoption("--bench-quick")
    frames, size, iterations = (4, 32, 4) if quick else (FRAMES, SIZE, ITERATIONS)
    photo, painting, images = _images()
    folder = Path(os.environ.get("NST_BENCH_VIDEO_OUTPUT") or tmp_path) if not quick else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    clip = photo_clip(folder / "clip.mp4", photo, frames, size)
    style = folder / "style.png"
    save_image(style, painting)
    engine = Engine(model, "cpu")
    config = DEFAULTS.with_stylize(model=model, size=size, iterations=iterations)
    config = dataclasses.replace(config, frame_iterations=2 if quick else FRAME_ITERATIONS)
    outcome = {}
    load_before = os.getloadavg()

    def run_temporal():
        outcome["temporal"] = _run(clip, style, folder / "temporal.mp4", config, engine)

    benchmark.pedantic(run_temporal, rounds=1, iterations=1)
    independent = dataclasses.replace(config, independent=True)
    outcome["independent"] = _run(clip, style, folder / "independent.mp4", independent, engine)
    (temporal, wall, cpu), (baseline, baseline_wall, baseline_cpu) = (
        outcome["temporal"],
        outcome["independent"],
    )
    error, baseline_error = temporal["temporal_error"]["output"], baseline["temporal_error"]["output"]
    ratio = error / baseline_error
    # The style loss of the later frames, the second frame's against the last's: a temporal
    # weight that holds frames too close to the last lets it creep up over the clip.
    later_style = _style_losses(temporal, "warped")
    probed = {name: _probed(folder / f"{name}.mp4") for name in ("temporal", "independent")}
    info = {
        "model": f"{engine.model_info.weights} ({model})",
        "backend": engine.backend,
        "load_average": [round(x, 2) for x in (*load_before, *os.getloadavg())],
        "images": images,
        "frames": frames,
        "size": temporal["size"],
        "first_frame_iterations": iterations,
        "frame_iterations": config.frame_iterations,
        "temporal_weight": config.temporal_weight,
        "input_error": temporal["temporal_error"]["input"],
        "temporal": {
            "error": error,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "first_frame_s": _seconds(temporal, "full"),
            "later_frame_s": _seconds(temporal, "warped"),
            "style_loss_first": _style_losses(temporal, "full")[0] if frames else None,
            "style_loss_later": [later_style[0], later_style[-1]] if later_style else None,
        },
        "independent": {
            "error": baseline_error,
            "wall_s": round(baseline_wall, 1),
            "cpu_s": round(baseline_cpu, 1),
            "frame_s": _seconds(baseline, "full"),
        },
        "error_ratio": round(ratio, 4),
        "wall_ratio": round(wall / baseline_wall, 3),
        "ffprobe": probed,
    }
    (folder / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    benchmark.extra_info.update(info)
    print(
        f"\n{info['model']}, {images}, {frames} frames at {temporal['size'][1]}x{temporal['size'][0]}, "
        f"first frame {iterations} iterations, later frames {config.frame_iterations} steps, "
        f"λ {config.temporal_weight:g}\n"
        f"temporal: error {error:.4g}, {wall:.0f} s wall ({info['temporal']['first_frame_s']} s the first "
        f"frame, {info['temporal']['later_frame_s']} s each later one)\n"
        f"independent: error {baseline_error:.4g}, {baseline_wall:.0f} s wall "
        f"({info['independent']['frame_s']} s a frame)\n"
        f"the input's own error {info['input_error']:.4g}; ratio {ratio:.4f} of the error, "
        f"{info['wall_ratio']} of the time\n"
        f"style loss: first frame {info['temporal']['style_loss_first']}, later frames "
        f"{info['temporal']['style_loss_later']}; backend {engine.backend}; load {info['load_average']}; "
        f"ffprobe {probed}"
    )
    assert np.isfinite(error) and np.isfinite(baseline_error)
    for name, found in probed.items():  # a real player's prober reads what was written
        if found is not None:
            assert found["frames"] == frames, name
            assert found["duration"] == pytest.approx(frames / 24, abs=1e-3), name
    if not quick:
        assert ratio <= 0.5
