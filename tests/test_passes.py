"""Coarse-to-fine runs: the plan of passes, and a run over two tiny scales (refusals: test_config)."""

from __future__ import annotations

import json

import pytest

from nst_ort import StylizeConfig, stylize
from nst_ort.config import InitKind
from nst_ort.passes import Pass, default_iterations, plan


@pytest.mark.parametrize(
    ("scales", "size", "iterations", "counts", "desired"),
    [
        (None, 64, 50, None, [Pass(0, 1, 64, 50)]),
        ((32,), 64, 50, None, [Pass(0, 2, 32, 33), Pass(1, 2, 64, 17)]),
        ((32, 64), 64, 50, None, [Pass(0, 2, 32, 33), Pass(1, 2, 64, 17)]),
        ((16, 32), 64, 500, None, [Pass(0, 3, 16, 308), Pass(1, 3, 32, 154), Pass(2, 3, 64, 38)]),
        ((32,), 64, 50, (7, 3), [Pass(0, 2, 32, 7), Pass(1, 2, 64, 3)]),
    ],
)
def test_plan(scales, size, iterations, counts, desired):
    config = StylizeConfig(
        size=size, iterations=iterations, scales=scales, scale_iterations=counts, min_scale=0
    )
    assert plan(config) == desired


@pytest.mark.parametrize(
    ("size", "min_scale", "desired"),
    [
        (512, 128, [128, 181, 256, 362, 512]),  # style-transfer-pytorch's ladder
        (1024, 256, [256, 362, 512, 724, 1024]),
        (300, 128, [150, 212, 300]),
        (128, 128, [128]),
        (512, 0, [512]),
        (512, 600, [512]),
    ],
)
def test_the_ladder_steps_by_root_two_down_to_min_scale(size, min_scale, desired):
    config = StylizeConfig(size=size, min_scale=min_scale, iterations=100)
    assert [p.size for p in plan(config)] == desired


def test_explicit_scales_replace_the_ladder():
    config = StylizeConfig(size=512, scales=(200,), min_scale=128, iterations=100)
    assert [p.size for p in plan(config)] == [200, 512]


def test_default_iterations_give_every_later_pass_about_the_same_time():
    ladder = [128, 181, 256, 362, 512]
    actual = default_iterations(ladder, 600)
    assert actual == (310, 155, 77, 39, 19)
    # Steps times pixels: each later pass within rounding of the second's, the first twice that.
    seconds = [n * size**2 for n, size in zip(actual, ladder, strict=True)]
    assert all(abs(s / seconds[1] - 1) < 0.1 for s in seconds[2:])
    assert abs(seconds[0] / seconds[1] - 1) < 0.1  # twice the steps at half the pixels
    assert default_iterations([256, 512], 500) == (333, 167)  # the first two passes: 2 : 1
    assert default_iterations([300], 300) == (300,)
    assert default_iterations([16, 32, 64], 3) == (1, 1, 1)
    assert sum(default_iterations([100, 141, 200, 283], 1001)) == 1001


def test_coarse_to_fine_run(tiny_model, make_image):
    content = make_image("content.png", 48, 64, seed=0)
    style = make_image("style.png", 64, 64, seed=3)
    passes: list[Pass] = []
    steps: list[int] = []
    config = StylizeConfig(
        model=tiny_model, init=InitKind.NOISE, size=64, scales=(32,), scale_iterations=(8, 4)
    )
    result = stylize(
        content, [style], config, callback=lambda r, _: steps.append(r.step), on_pass=passes.append
    )
    assert result.image.shape == (48, 64, 3)
    assert [(p.index, p.size) for p in passes] == [(0, 32), (1, 64)]
    data = result.report.finish(result.status, result.message, None)
    assert [(p["height"], p["width"]) for p in data["passes"]] == [(24, 32), (48, 64)]
    assert steps == list(range(1, len(steps) + 1))  # steps count on across passes
    assert [r["step"] for r in data["iterations"]] == steps
    assert data["evaluations"] == sum(p["evaluations"] for p in data["passes"]) >= len(steps)
    json.dumps(data)  # the report stays JSON

    # The fine pass starts from the coarse result: its first step is well below that of a run
    # from noise at the same size (856 against 1288 with these weights and images).
    single = stylize(
        content, [style], StylizeConfig(model=tiny_model, init=InitKind.NOISE, size=64, iterations=1)
    )
    first_fine = data["iterations"][len(steps) - 4]
    assert first_fine["step"] == len(steps) - 3
    assert first_fine["loss"] < 0.8 * single.report.data["iterations"][0]["loss"]
