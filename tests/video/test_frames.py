"""One frame at a time: the first from the config's schedule, later ones from the warped previous
result with the temporal term; style targets computed once."""

import numpy as np
import pytest

from nst_ort.colors import rgb_to_yiq
from nst_ort.config import PreserveColors, Status, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.video import flow
from nst_ort.video.config import VideoConfig
from nst_ort.video.frames import FULL, WARPED, Stylizer, quantized
from nst_ort.video.temporal import TEMPORAL
from tests import requires
from tests.video.clips import moving_frames, scene

pytestmark = requires.needs_video

FIRST = StylizeConfig(size=64, iterations=6, min_scale=0)


@pytest.fixture(scope="module")
def engine(tiny_model):
    return Engine(tiny_model, "cpu", threads=2)


def config(**changes) -> VideoConfig:
    return VideoConfig(**{"stylize": FIRST, "frame_iterations": 4, **changes})


def test_the_first_frame_runs_the_schedule_and_later_ones_the_short_pass(engine):
    contents = moving_frames(2, 48, 64, shift=(2, 1))
    stylizer = Stylizer(engine, config(), [scene(40, 40, seed=3)], contents[0])
    first = stylizer.full(0, contents[0])
    assert first.status is Status.DONE and first.image.shape == (48, 64, 3)
    assert (first.record["kind"], first.record["steps"], first.record["frame"]) == (FULL, 6, 0)
    later = stylizer.warped(1, contents[1], contents[0], quantized(first.image))
    assert later.status is Status.DONE and later.image.shape == (48, 64, 3)
    assert (later.record["kind"], later.record["steps"]) == (WARPED, 4)
    assert later.record[TEMPORAL] >= 0 and later.record["evaluations"] == 4


def test_style_targets_are_computed_once_for_every_later_frame(engine, monkeypatch):
    contents = moving_frames(4, 48, 64)
    stylizer = Stylizer(engine, config(), [scene(40, 40, seed=3)], contents[0])
    calls = []
    original = engine.style_targets
    monkeypatch.setattr(engine, "style_targets", lambda *a, **k: calls.append(a) or original(*a, **k))
    previous = stylizer.full(0, contents[0]).image
    for i in range(1, 4):
        previous = stylizer.warped(i, contents[i], contents[i - 1], quantized(previous)).image
    # the first frame's passes compute their own; the three later frames share one computation
    assert len(calls) == 2


def test_the_temporal_term_keeps_a_frame_to_the_warped_previous_one(engine):
    contents = moving_frames(2, 48, 64, shift=(2, 1))
    style = scene(40, 40, seed=3)
    first = quantized(Stylizer(engine, config(), [style], contents[0]).full(0, contents[0]).image)
    moved = flow.motion(contents[0], contents[1])

    def error(weight):
        stylizer = Stylizer(engine, config(temporal_weight=weight, frame_iterations=8), [style], contents[0])
        return flow.warping_error(first, stylizer.warped(1, contents[1], contents[0], first).image, moved)

    held, free = error(1e5), error(0.0)
    assert held < 0.5 * free


def test_colours_kept_on_luminance_are_the_content_frames(engine):
    contents = moving_frames(2, 48, 64)
    stylize = StylizeConfig(size=64, iterations=4, min_scale=0, preserve_colors=PreserveColors.LUMINANCE)
    stylizer = Stylizer(
        engine, VideoConfig(stylize=stylize, frame_iterations=3), [scene(40, 40, 3)], contents[0]
    )
    first = stylizer.full(0, contents[0]).image
    later = stylizer.warped(1, contents[1], contents[0], quantized(first)).image
    # the chroma (I, Q) is the content frame's but where clipping to [0, 1] moved it
    actual = np.abs(rgb_to_yiq(later)[..., 1:] - rgb_to_yiq(contents[1])[..., 1:])
    assert np.median(actual) < 1e-5 and actual.mean() < 0.005
