"""`nst-ort video`: a clip in, a clip out that a real player reads, resumable; one line for bad input."""

import inspect
import json
import signal
import time

import numpy as np
import pytest

from nst_ort import backends
from nst_ort.cli import stylize, video
from nst_ort.video.config import DEFAULTS
from tests import requires
from tests.video.clips import audio_only, ffprobe, no_frames, unknown_codec, write_clip

pytestmark = requires.needs_video

FAST = ["--size", 48, "--iterations", 4, "--min-scale", 0, "--frame-iterations", 3, "--threads", 2]


@pytest.fixture
def inputs(tmp_path, make_image):
    return write_clip(tmp_path / "in.mp4", frames=6), make_image("style.png", 40, 40, seed=3)


@requires.needs_ffprobe
def test_a_clip_in_a_clip_out_with_its_audio_and_report(inputs, tmp_path, tiny_model, cli):
    clip, style = inputs
    output, report = tmp_path / "out.mp4", tmp_path / "run.json"
    result = cli("video", clip, style, "-o", output, "--model", tiny_model, *FAST, "--report", report)
    assert result.exit_code == 0, result.stderr
    ran = backends.resolve("auto", "cpu")  # ort-graph, or bf16 on a CPU where it pays
    assert "video: 6 of 6 frames at 48x36, 24 fps" in result.stderr and f"backend: {ran}" in result.stderr
    assert f"done: {output} (6 frames)" in result.stdout and "temporal error" in result.stdout
    actual = ffprobe(output)
    assert actual["video"]["codec_name"] == "h264" and int(actual["video"]["nb_read_frames"]) == 6
    assert (actual["video"]["width"], actual["video"]["height"]) == (48, 36)
    assert float(actual["video"]["duration"]) == pytest.approx(6 / 24, abs=1e-3)
    assert actual["audio"]["codec_name"] == "aac"
    assert float(actual["audio"]["duration"]) == pytest.approx(6 / 24, abs=0.05)
    data = json.loads(report.read_text())
    assert data["status"] == "done" and data["computed"] == 6 and data["range"] == [0, 6]
    assert data["backend"] == ran and data["config"]["stylize"]["backend"] == "auto"
    assert [f["kind"] for f in data["frames"]] == ["full"] + ["warped"] * 5
    assert [f["steps"] for f in data["frames"]] == [4] + [3] * 5
    assert data["temporal_error"]["pairs"] == 5 and data["temporal_error"]["output"] >= 0
    assert data["config"]["temporal_weight"] == DEFAULTS.temporal_weight
    assert len(list((tmp_path / "out.mp4.frames").glob("frame_*.png"))) == 6

    again = cli("video", clip, style, "-o", output, "--model", tiny_model, *FAST, "--quiet")
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "" and again.stderr == ""
    assert int(ffprobe(output)["video"]["nb_read_frames"]) == 6


@requires.needs_ffprobe
def test_a_range_of_frames_is_a_clip_of_its_own(inputs, tmp_path, tiny_model, cli):
    clip, style = inputs
    output = tmp_path / "part.mkv"
    result = cli("video", clip, style, "-o", output, "--model", tiny_model, *FAST, "--frames", "2:5")
    assert result.exit_code == 0, result.stderr
    actual = ffprobe(output)
    assert int(actual["video"]["nb_read_frames"]) == 3
    assert sorted(p.name for p in (tmp_path / "part.mkv.frames").glob("*.png")) == [
        "frame_000002.png",
        "frame_000003.png",
        "frame_000004.png",
    ]
    assert "audio" in actual


def wait_for(path, process, seconds=300):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_goes_on_where_it_stopped(inputs, tmp_path, tiny_model, cli, cli_popen, signum):
    clip, style = inputs
    output = tmp_path / "out.mp4"
    args = ["video", clip, style, "-o", output, "--model", tiny_model, *FAST[:-4], "--frame-iterations", 60]
    process = cli_popen(*args, "--quiet")
    wait_for(tmp_path / "out.mp4.frames" / "frame_000001.json", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted after" in stderr and "run the same command again to go on" in stderr
    assert not output.exists()
    done = len(list((tmp_path / "out.mp4.frames").glob("frame_*.json")))
    assert 2 <= done < 6

    resumed = cli(*args, "--report", tmp_path / "r.json")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"{done} done before" in resumed.stderr and f"{6 - done} stylised now" in resumed.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["computed"] == 6 - done and len(data["frames"]) == 6
    assert output.is_file()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.write_text("hello"), p)[1], "not a video FFmpeg can read"),
        (lambda p: audio_only(p.with_suffix(".m4a")), "has no video stream"),
        (lambda p: no_frames(p.with_suffix(".mkv")), "has no frames"),
        (lambda p: unknown_codec(p, p.with_name("good.mp4")), "unknown video codec"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_model, make_image, cli, make, message):
    bad = make(tmp_path / "bad.mp4")
    output = tmp_path / "out.mp4"
    result = cli("video", bad, make_image("s.png"), "-o", output, "--model", tiny_model)
    assert result.exit_code == 2
    assert str(bad) in result.error and message in result.error
    assert not output.exists() and not (tmp_path / "out.mp4.frames").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--frames", "4:2"), "error: --frames 4:2: END must be after START"),
        (("--frames", "x"), "error: --frames 'x': expected START:END, START: or :END"),
        (("--frames", "9:"), "error: --frames 9:: the clip has 6 frames (0 to 5)"),
        (("--temporal-weight", "-1"), "error: --temporal-weight -1.0: must be a finite number, 0 or more"),
        (("--frame-iterations", "0"), "error: --frame-iterations 0: at least 1"),
        (("--chunk", "3", "--overlap", "3"), "error: --overlap 3: must be less than --chunk 3"),
        (("--size", "8"), "error: --size 8 makes 64x48 frames 8x6; at least 16 px per side"),
        (("--scales", "64,32"), "error: --scales must increase, e.g. 256,512"),
        (("-o", "out.avi"), "unknown video extension '.avi'"),
        (("--preserve-colors", "painting"), "error: --preserve-colors painting: not for video"),
    ],
)
def test_bad_options_name_the_option(inputs, tmp_path, tiny_model, cli, args, message):
    clip, style = inputs
    output = ["-o", tmp_path / "out.mp4"] if "-o" not in args else []
    result = cli("video", clip, style, *output, "--model", tiny_model, *args)
    assert result.exit_code == 2
    assert message in result.error
    assert not (tmp_path / "out.mp4.frames").exists()


def test_the_video_options_default_to_the_video_config():
    parameters = inspect.signature(video.video_command).parameters
    for name in ("temporal_weight", "frame_iterations", "independent", "chunk", "overlap"):
        assert parameters[name].default == getattr(DEFAULTS, name), name
    assert parameters["size"].default == DEFAULTS.stylize.size


def test_every_option_of_stylize_is_one_of_video():
    # The first frame runs as `stylize` would: a loss or schedule option added there (a field of
    # StylizeConfig or LossSpec) must reach the frames too, with the same default.
    desired = inspect.signature(stylize.stylize_command).parameters
    actual = inspect.signature(video.video_command).parameters
    for name, parameter in desired.items():
        # a single picture's only: its content, checkpoints, and tiles (a frame at a clip's sizes
        # fits in memory; the later frames' one pass is not tiled)
        if name in ("content", "output", "save_every", "tile"):
            continue
        assert name in actual, name
        if name != "size":  # video's own default (DEFAULTS.stylize.size)
            assert actual[name].default == parameter.default, name


def test_the_sliced_style_loss_runs_every_frame(tmp_path, tiny_model, make_image, cli):
    # The loss goes to every frame as one LossSpec: a style term other than the Gram's reaches
    # the later frames, whose style targets (and the sliced term's directions) are computed once.
    clip, style = write_clip(tmp_path / "in.mp4", frames=3), make_image("style.png", 40, 40, seed=3)
    output, report = tmp_path / "out.mp4", tmp_path / "run.json"
    args = ["video", clip, style, "-o", output, "--model", tiny_model, *FAST, "--style-loss", "sliced"]
    result = cli(*args, "--report", report)
    assert result.exit_code == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["config"]["stylize"]["loss"]["style_loss"] == "sliced"
    assert [f["kind"] for f in data["frames"]] == ["full", "warped", "warped"]
    assert all(np.isfinite(f["loss.style"]) and f["loss.style"] > 0 for f in data["frames"])
    gram = cli(*args[:-2], "--style-loss", "gram")  # the same folder, another style term: refused
    assert gram.exit_code == 2 and "style_loss" in gram.error
