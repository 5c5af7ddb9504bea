"""The frames folder: frames written as they finish, a run that goes on at the first one missing,
another run's settings refused, and the temporal-consistency measure."""

import json

import numpy as np
import pytest

from nst_ort.config import StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.video import media
from nst_ort.video.config import VideoConfig
from nst_ort.video.frames import FULL, WARPED, Stylizer
from nst_ort.video.sequence import FrameStore, frames_folder, measure, run_frames, settings_of
from tests import requires
from tests.video.clips import moving_frames, scene, write_clip

pytestmark = requires.needs_video

CONFIG = VideoConfig(stylize=StylizeConfig(size=64, iterations=4, min_scale=0), frame_iterations=3)


class Seen:
    """A FrameView that keeps what it is told."""

    def __init__(self):
        self.started, self.finished, self.steps = [], [], 0

    def start_frame(self, index, kind, steps):
        self.started.append((index, kind, steps))

    def start_pass(self, current):
        pass

    def __call__(self, record, image):
        self.steps += 1

    def finish_frame(self, record):
        self.finished.append(record["frame"])


def test_frames_are_written_and_a_second_run_goes_on_at_the_first_missing(tiny_model, tmp_path):
    engine = Engine(tiny_model, "cpu", threads=2)
    contents = list(enumerate(moving_frames(5, 48, 64)))
    stylizer = Stylizer(engine, CONFIG, [scene(40, 40, seed=3)], contents[0][1])
    store = FrameStore(tmp_path / "frames")
    store.open({"run": 1})
    seen = Seen()
    first = run_frames(stylizer, contents[:3], store, seen)
    assert first.computed == 3 and seen.finished == [0, 1, 2]
    assert seen.started == [(0, FULL, 4), (1, WARPED, 3), (2, WARPED, 3)] and seen.steps == 10
    assert [store.has(i) for i in range(5)] == [True, True, True, False, False]
    before = store.image_path(2).read_bytes()

    seen = Seen()
    second = run_frames(stylizer, contents, store, seen)
    assert second.computed == 2 and seen.started == [(3, WARPED, 3), (4, WARPED, 3)]
    assert store.image_path(2).read_bytes() == before  # frames done are left as they are
    assert store.record(4)["kind"] == WARPED and store.load(4).shape == (48, 64, 3)
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".")] == []


def test_independent_frames_all_run_the_full_schedule(tiny_model, tmp_path):
    engine = Engine(tiny_model, "cpu", threads=2)
    contents = list(enumerate(moving_frames(3, 48, 64)))
    config = VideoConfig(stylize=CONFIG.stylize, independent=True)
    stylizer = Stylizer(engine, config, [scene(40, 40, seed=3)], contents[0][1])
    store = FrameStore(tmp_path / "frames")
    store.open({})
    seen = Seen()
    run_frames(stylizer, contents, store, seen)
    assert [kind for _, kind, _ in seen.started] == [FULL, FULL, FULL]


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mp4", frames=2))
    styles = [tmp_path / "s.png"]
    store = FrameStore(frames_folder(tmp_path / "out.mp4"))
    assert store.folder == tmp_path / "out.mp4.frames"
    store.open(settings_of(CONFIG, clip, styles, (48, 64)))
    # where and how frames run does not matter; what decides their pixels does
    elsewhere = VideoConfig(stylize=CONFIG.stylize, frame_iterations=3, frames=(1, 2), chunk=5, overlap=2)
    store.open(settings_of(elsewhere, clip, styles, (48, 64)))
    other = VideoConfig(stylize=CONFIG.stylize, frame_iterations=3, temporal_weight=5.0)
    with pytest.raises(NstError) as caught:
        store.open(settings_of(other, clip, styles, (48, 64)))
    differs = f"config.temporal_weight {CONFIG.temporal_weight} against 5.0 now"
    desired = f"holds frames made with other settings ({differs}); remove it or choose another output"
    assert desired in str(caught.value)
    assert json.loads((store.folder / "settings.json").read_text())["size"] == [48, 64]


def test_the_measure_of_the_input_itself_is_its_own_floor(tmp_path):
    clip = media.probe(write_clip(tmp_path / "in.mp4", frames=4, shift=(2, 1)))
    frames = range(4)
    contents = [image for _, image in media.read_frames(clip, 48, 64, frames)]
    actual = measure(clip, (48, 64), frames, contents)
    assert actual["pairs"] == 3 and len(actual["per_frame"]) == 3
    assert actual["output"] == actual["input"] < 0.01
    flicker = [np.clip(image + (0.2 if i % 2 else 0.0), 0, 1) for i, image in enumerate(contents)]
    assert measure(clip, (48, 64), frames, flicker)["output"] > 10 * actual["input"]
