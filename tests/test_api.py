"""stylize(): the same seed gives the same image; arrays in, the report names them."""

from dataclasses import replace

import numpy as np

from nst_ort import InitKind, Status, StylizeConfig, stylize
from nst_ort.imageio import load_image


def test_same_seed_same_image(tiny_model, make_image):
    content, style = make_image("c.png", seed=1), make_image("s.png", seed=2)
    config = StylizeConfig(model=tiny_model, size=48, iterations=5, seed=3, init=InitKind.NOISE)
    first = stylize(content, [style], config)
    second = stylize(content, [style], config)
    third = stylize(content, [style], replace(config, seed=4))
    np.testing.assert_array_equal(first.image, second.image)
    assert not np.array_equal(first.image, third.image)
    assert first.image.shape == (38, 48, 3)  # 64x80 content, longest side 48


def test_arrays_and_paths_give_the_same_run(tiny_model, make_image):
    content, style = make_image("c.png", seed=1), make_image("s.png", seed=2)
    config = StylizeConfig(model=tiny_model, size=32, iterations=2)
    from_paths = stylize(content, [style], config)
    from_arrays = stylize(load_image(content), [load_image(style)], config)
    np.testing.assert_array_equal(from_arrays.image, from_paths.image)
    assert from_paths.status is Status.DONE
    assert from_paths.report.data["inputs"] == {
        "content": str(content),
        "styles": [str(style)],
        "size": [26, 32],
    }
    assert from_arrays.report.data["inputs"]["content"] == "array"
