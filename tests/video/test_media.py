"""Clips in and out through PyAV: probing, decoding at the run's size, encoding with the audio."""

from fractions import Fraction

import numpy as np
import pytest

from nst_ort.errors import NstError
from nst_ort.video import media
from tests import requires
from tests.video.clips import audio_only, ffprobe, moving_frames, no_frames, unknown_codec, write_clip

pytestmark = requires.needs_video


def test_probe_counts_frames_and_reads_the_streams(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mp4", frames=7, height=48, width=64))
    assert (clip.frames, clip.rate, clip.height, clip.width) == (7, Fraction(24), 48, 64)
    assert (clip.codec, clip.audio) == ("h264", "aac")
    assert clip.duration == pytest.approx(7 / 24)


def test_read_frames_gives_the_range_at_the_size_asked(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mp4", frames=6))
    actual = list(media.read_frames(clip, 24, 32, range(2, 5)))
    assert [index for index, _ in actual] == [2, 3, 4]
    assert all(image.shape == (24, 32, 3) and image.dtype == np.float32 for _, image in actual)
    # the frames are the clip's (H.264 at a low CRF): each close to the scene's crop, halved
    desired = moving_frames(6)[3]
    full = list(media.read_frames(clip, 48, 64, range(3, 4)))[0][1]
    np.testing.assert_allclose(full, desired, rtol=0, atol=0.12)
    assert np.mean(np.abs(full - desired)) < 0.02


def test_frame_sizes_are_even_and_refused_below_the_minimum():
    assert media.frame_size(190, 256, 128) == (94, 128)  # 95 rounded down to even
    assert media.frame_size(48, 64, 65) == (48, 64)
    with pytest.raises(NstError, match=r"`size` 20 makes 64x48 frames 20x14; at least 16 px"):
        media.frame_size(48, 64, 20)


@requires.needs_ffprobe
def test_round_trip_keeps_count_rate_duration_and_audio(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mp4", frames=10))
    frames = range(2, 8)
    images = [image for _, image in media.read_frames(clip, 32, 42, frames)]
    output = tmp_path / "out.mp4"
    media.write_clip(output, images, clip, frames)
    actual = ffprobe(output)
    assert actual["video"]["codec_name"] == "h264" and actual["video"]["pix_fmt"] == "yuv420p"
    assert (actual["video"]["width"], actual["video"]["height"]) == (42, 32)
    assert int(actual["video"]["nb_read_frames"]) == 6 and actual["video"]["r_frame_rate"] == "24/1"
    assert float(actual["video"]["duration"]) == pytest.approx(6 / 24, abs=1e-3)
    # the audio of those frames, copied (AAC packets are 1024 samples: 23 ms at 44.1 kHz)
    assert actual["audio"]["codec_name"] == "aac"
    assert float(actual["audio"]["duration"]) == pytest.approx(6 / 24, abs=0.05)
    again = media.probe(output)
    assert (again.frames, again.rate, again.audio) == (6, Fraction(24), "aac")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_clip_without_audio_is_written_without(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mkv", frames=3, audio=False))
    images = [image for _, image in media.read_frames(clip, 48, 64, range(3))]
    media.write_clip(tmp_path / "out.mkv", images, clip, range(3))
    actual = media.probe(tmp_path / "out.mkv")
    assert (actual.frames, actual.audio) == (3, None)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, tmp: p, "no such file"),
        (lambda p, tmp: (p.write_text("hello"), p)[1], "not a video FFmpeg can read"),
        (lambda p, tmp: (p.write_bytes(b""), p)[1], "not a video FFmpeg can read"),
        (lambda p, tmp: audio_only(p.with_suffix(".m4a")), "has no video stream"),
        (lambda p, tmp: no_frames(p.with_suffix(".mkv")), "has no frames"),
        (lambda p, tmp: unknown_codec(p, tmp / "good.mp4"), "unknown video codec"),
    ],
)
def test_bad_input_is_one_error_naming_the_file(tmp_path, make, message):
    bad = make(tmp_path / "bad.mp4", tmp_path)
    with pytest.raises(NstError, match=message) as caught:
        media.probe(bad)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("o.avi", "unknown video extension '.avi' (use .mp4, .m4v, .mov, .mkv)"),
        ("missing/o.mp4", "no such folder"),
    ],
)
def test_outputs_are_checked_before_any_work(tmp_path, name, message):
    with pytest.raises(NstError) as caught:
        media.check_output(tmp_path / name)
    assert message in str(caught.value)
