"""Optical flow on a known shift, Ruder's consistency weights, warping, and the measure."""

import numpy as np
import pytest

from nst_ort.video import flow
from tests import requires
from tests.video.clips import moving_frames

pytestmark = requires.needs_video


def test_flow_and_weights_of_a_known_shift():
    # The crop moves 3 px right and 1 px down: each pixel of the current frame was 3 px right
    # and 1 px below in the previous one.
    previous, current = moving_frames(2, 48, 64, shift=(3, 1))
    moved = flow.motion(previous, current)
    inside = (slice(6, -6), slice(6, -6))
    actual = np.median(moved.backward[inside].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(actual, [3.0, 1.0], rtol=0, atol=0.25)
    # the last 3 columns and last row come from outside the previous frame: no weight there
    assert moved.weights[:, -2:].max() == 0 and moved.weights[-1:, :].max() == 0
    assert moved.weights[inside].mean() > 0.95
    warped = flow.warp(previous, moved.backward)
    aligned = np.mean(np.abs(warped - current)[inside])
    assert aligned < 0.01 and aligned < 0.2 * np.mean(np.abs(previous - current)[inside])


def test_flows_that_disagree_are_disocclusions():
    backward = np.zeros((20, 24, 2), np.float32)
    backward[..., 0] = -2.0
    forward = -backward  # consistent: the forward flow undoes the backward one
    actual = flow.consistency(backward, forward)
    assert actual[:, 2:].min() == 1 and actual[:, :2].max() == 0  # the first columns map outside
    # where the forward flow goes elsewhere, a disocclusion: |w̃ + ŵ|² = 36 > 0.01·(16 + 4) + 0.5;
    # seen in the current frame 2 px to the right of where it is in the previous one
    forward[5:10, 10:15, 0] = -4.0
    actual = flow.consistency(backward, forward)
    assert actual[5:10, 12:17].max() == 0
    assert actual[12:, 2:].min() == 1


def test_motion_boundaries_get_no_weight():
    backward = np.zeros((20, 24, 2), np.float32)
    backward[:, 12:, 0] = 1.0  # the right half moves; the left does not
    actual = flow.consistency(backward, -backward)
    # |∇u|² = 0.25 at the step (np.gradient's central differences), well over 0.01·1 + 0.002
    assert actual[:, 11:13].max() == 0
    assert actual[:, :10].min() == 1 and actual[:, 14:-1].min() == 1
    assert actual[:, -1].max() == 0  # the last column comes from outside the frame


def test_warping_error_is_the_mean_over_the_pixels_kept():
    rng = np.random.default_rng(0)
    previous = rng.random((10, 12, 3), dtype=np.float32)
    weights = np.ones((10, 12), np.float32)
    weights[:, :6] = 0
    moved = flow.Motion(np.zeros((10, 12, 2), np.float32), weights)
    current = previous.copy()
    current[:, :6] += 0.5  # where nothing is kept: not counted
    assert flow.warping_error(previous, current, moved) == 0.0
    current[:, 6:] += 0.1  # 0.1 in each of the three channels: 3 · 0.01
    assert flow.warping_error(previous, current, moved) == pytest.approx(0.03, rel=1e-5)
    nothing = flow.Motion(moved.backward, np.zeros_like(weights))
    assert np.isnan(flow.warping_error(previous, current, nothing))
