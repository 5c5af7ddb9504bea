"""The run prologue: what prepare() checks before anything runs, and what it hands on."""

import pytest

from nst_ort.config import InitKind, LossSpec, StylizeConfig
from nst_ort.errors import NstError
from nst_ort.imageio import load_image
from nst_ort.run import blend_weights, prepare

STYLE_ONLY = LossSpec(content_layers={}, style_layers={"relu1_1": 1.0})


def test_blend_weights_are_normalised():
    assert blend_weights(None, 4) == [0.25] * 4
    assert blend_weights((1.0, 3.0), 2) == [0.25, 0.75]


def test_prepare_loads_and_frames(tiny_model, make_image):
    content, style = make_image("c.png", 60, 90, seed=1), make_image("s.png", 50, 50, seed=2)
    run = prepare(StylizeConfig(model=tiny_model, size=45, style_blend=(1.0, 1.0)), content, [style, style])
    assert run.frame == (60, 90) and run.size == (30, 45)
    assert run.blend == [0.5, 0.5]
    assert run.content.shape == load_image(content).shape  # full size: each pass resizes from it
    assert run.sources == {"content": str(content), "styles": [str(style), str(style)]}
    assert run.report().data["inputs"]["size"] == [30, 45]


@pytest.mark.parametrize(
    ("config", "content", "styles", "message"),
    [
        (StylizeConfig(), True, [], "at least one style image is needed"),
        (
            StylizeConfig(init=InitKind.CONTENT, loss=STYLE_ONLY),
            False,
            [True],
            "`init` content needs a content image",
        ),
        (StylizeConfig(init=InitKind.NOISE), False, [True], "a content loss needs a content image"),
        (
            StylizeConfig(style_blend=(1.0,)),
            True,
            [True, True],
            "`style_blend` has 1 weights for 2 style images",
        ),
        (StylizeConfig(size=8), True, [True], "`size` 8 is too small"),
    ],
)
def test_prepare_refuses_what_cannot_run(tiny_model, make_image, config, content, styles, message):
    from dataclasses import replace

    image = make_image("c.png")
    with pytest.raises(NstError, match=message):
        prepare(replace(config, model=tiny_model), image if content else None, [image for _ in styles])
