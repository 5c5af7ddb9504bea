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


def test_prepare_chooses_tiles_for_a_size_that_does_not_fit_whole(tiny_model, make_image):
    from nst_ort.memory import available_bytes
    from nst_ort.tiles.budget import tile_bytes

    if available_bytes() < 3 * 2**30:
        pytest.skip("under 3 GiB of memory available: even 4096 px tiles would not fit")
    content, style = make_image("c.png", 48, 64), make_image("s.png", 48, 48, seed=1)
    run = prepare(StylizeConfig(model=tiny_model, size=4096), content, [style])
    assert run.size == (3072, 4096)
    assert 32 <= run.config.tile < 3072
    assert tile_bytes(run.engine, run.config, run.config.tile, 3072, 4096) <= available_bytes() + 2**28
    with pytest.raises(NstError, match="3072 px needs about"):  # a bundle must fit whole
        prepare(StylizeConfig(model=tiny_model, size=4096), content, [style], tiled=False)
