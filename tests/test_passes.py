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
        ((32,), 64, 50, None, [Pass(0, 2, 32, 40), Pass(1, 2, 64, 10)]),
        ((32, 64), 64, 50, None, [Pass(0, 2, 32, 40), Pass(1, 2, 64, 10)]),
        ((16, 32), 64, 500, None, [Pass(0, 3, 16, 200), Pass(1, 3, 32, 200), Pass(2, 3, 64, 100)]),
        ((32,), 64, 50, (7, 3), [Pass(0, 2, 32, 7), Pass(1, 2, 64, 3)]),
    ],
)
def test_plan(scales, size, iterations, counts, desired):
    config = StylizeConfig(size=size, iterations=iterations, scales=scales, scale_iterations=counts)
    assert plan(config) == desired


def test_default_iterations_give_the_last_pass_a_fifth():
    assert default_iterations(2, 500) == (400, 100)
    assert default_iterations(1, 300) == (300,)
    assert default_iterations(3, 3) == (1, 1, 1)


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
