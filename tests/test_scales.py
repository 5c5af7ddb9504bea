"""Coarse-to-fine runs: the plan of passes, and a run over two tiny scales."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nst_ort import NstError, StylizeConfig, stylize
from nst_ort.config import InitKind
from nst_ort.imageio import load_image
from nst_ort.scales import Pass, default_iterations, plan


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


@pytest.mark.parametrize(
    ("scales", "counts", "message"),
    [
        ((64, 32), None, "--scales must increase"),
        ((32, 128), None, "--scales 128 is larger than --size 64"),
        ((8,), None, "at least 16 px"),
        ((32,), (5,), "--scale-iterations has 1 counts for 2 passes (32, 64 px)"),
        ((32,), (5, 0), "every count must be at least 1"),
    ],
)
def test_plan_refuses(scales, counts, message):
    with pytest.raises(NstError) as error:
        plan(StylizeConfig(size=64, scales=scales, scale_iterations=counts))
    assert message in str(error.value)


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


def test_cli_scales(tiny_model, make_image, tmp_path):
    from typer.testing import CliRunner

    from nst_ort.cli import app

    content, style = make_image("c.png", 40, 48, seed=0), make_image("s.png", 40, 40, seed=1)
    output, report = tmp_path / "out.png", tmp_path / "report.json"
    args = ["stylize", str(content), str(style), "-o", str(output), "--model", str(tiny_model)]
    args += ["--size", "48", "--scales", "24,48", "--scale-iterations", "4,2", "--report", str(report)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "scale 1/2: 24 px" in result.output and "scale 2/2: 48 px" in result.output
    assert load_image(output).shape == (40, 48, 3)
    data = json.loads(report.read_text())
    assert [(p["height"], p["width"]) for p in data["passes"]] == [(20, 24), (40, 48)]
    assert data["config"]["scales"] == [24, 48]
    assert np.isfinite(data["final"]["loss"])


def test_a_pass_too_small_for_the_deepest_layers_is_refused(tiny_model, make_image):
    content, style = make_image("wide.png", 32, 80, seed=0), make_image("s.png", 32, 32, seed=1)
    config = StylizeConfig(model=tiny_model, size=80, scales=(20,), iterations=2)
    with pytest.raises(NstError) as error:
        stylize(content, [style], config)
    assert str(error.value) == (
        "--scales 20 makes a 20x8 image; the deepest layers need at least 16 px per side"
    )
