"""A sweep's grid: axes from their text, their order, one-value axes, cells and their keys."""

from __future__ import annotations

import pytest

from nst_ort import StylizeConfig
from nst_ort.errors import NstError
from nst_ort.studies.grid import AxisKind, cells, make_batch, make_sweep, parse_numbers, parse_style_layers

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.mark.parametrize(
    ("text", "values", "labels"),
    [
        ("relu1_1,relu3_1", [("relu1_1",), ("relu3_1",)], ["relu1_1", "relu3_1"]),
        ("relu2_1..relu4_1", [("relu2_1",), ("relu3_1",), ("relu4_1",)], ["relu2_1", "relu3_1", "relu4_1"]),
        ("relu1_1+relu2_1,relu5_1", [("relu1_1", "relu2_1"), ("relu5_1",)], ["relu1_1+relu2_1", "relu5_1"]),
        (
            "cumulative:relu1_1..relu3_1",
            [("relu1_1",), ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1", "relu3_1")],
            ["relu1_1", "relu1_1..relu2_1", "relu1_1..relu3_1"],
        ),
    ],
)
def test_parse_style_layers(text, values, labels):
    axis = parse_style_layers(text, STYLE_LAYERS)
    assert list(axis.values) == values
    assert list(axis.labels) == labels


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("relu9_1", "unknown style layer 'relu9_1'"),
        ("relu3_1..relu1_1", "runs backwards"),
        ("cumulative:relu1_1+relu2_1", "not '+' sets"),
        (" , ", "no style layers given"),
    ],
)
def test_parse_style_layers_refuses(text, message):
    with pytest.raises(NstError) as error:
        parse_style_layers(text, STYLE_LAYERS)
    assert message in str(error.value)


def test_parse_numbers():
    assert parse_numbers(AxisKind.RATIO, "1e-5,2.5e-3").labels == ("1e-5", "2.5e-3")
    assert parse_numbers(AxisKind.STYLE_SIZE, "128,256").values == (128, 256)
    assert parse_numbers(AxisKind.STYLE_SCALE, "0.5,2").labels == ("x0.5", "x2")
    for kind, text in ((AxisKind.RATIO, "a"), (AxisKind.RATIO, "0,1"), (AxisKind.STYLE_SIZE, "8,100.5")):
        with pytest.raises(NstError):
            parse_numbers(kind, text)
    with pytest.raises(NstError, match="`ratio`: values must be positive"):
        parse_numbers(AxisKind.RATIO, "0,1")


def test_sweep_axes_order_and_limits(tmp_path):
    ratio = parse_numbers(AxisKind.RATIO, "1e-4,1e-3")
    layers = parse_style_layers("relu1_1,relu2_1", STYLE_LAYERS)
    scale = parse_numbers(AxisKind.STYLE_SCALE, "0.5,1")
    sweep = make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio, layers])
    assert (sweep.rows.kind, sweep.cols.kind) == (AxisKind.STYLE_LAYERS, AxisKind.RATIO)  # as Figure 3
    assert make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio]).rows is None
    with pytest.raises(NstError, match="one or two axes, not 3"):
        make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio, layers, scale])
    with pytest.raises(NstError, match="needs an axis"):
        make_sweep(tmp_path, tmp_path, StylizeConfig(), [])


def test_an_axis_of_one_value_fixes_the_setting(tmp_path):
    ratio = parse_numbers(AxisKind.RATIO, "1e-2")
    scale = parse_numbers(AxisKind.STYLE_SCALE, "0.5,1")
    sweep = make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio, scale])
    assert sweep.rows is None and sweep.cols.kind is AxisKind.STYLE_SCALE
    assert sweep.base.loss.style_weight == pytest.approx(100.0, rel=1e-12)
    size = parse_numbers(AxisKind.STYLE_SIZE, "128")
    with pytest.raises(NstError, match="`style_size` and `style_scale` set the same thing"):
        make_sweep(tmp_path, tmp_path, StylizeConfig(), [size, scale])


def test_cells_carry_their_settings_and_a_key_of_them(make_image):
    content, style = make_image("c.png"), make_image("s.png", seed=1)
    ratio = parse_numbers(AxisKind.RATIO, "1e-4,1e-2")
    layers = parse_style_layers("relu1_1,relu2_1", STYLE_LAYERS)
    sweep = make_sweep(content, style, StylizeConfig(size=64), [ratio, layers])
    grid = cells(sweep, "0" * 64)
    assert [(c.row, c.col, c.label) for c in grid] == [
        (0, 0, "relu1_1 | 1e-4"),
        (0, 1, "relu1_1 | 1e-2"),
        (1, 0, "relu2_1 | 1e-4"),
        (1, 1, "relu2_1 | 1e-2"),
    ]
    assert grid[3].config.loss.style_layers == {"relu2_1": 1.0}
    assert grid[3].config.loss.style_weight == pytest.approx(1e2, rel=1e-12)
    assert len({c.key for c in grid}) == 4
    # Where and how fast a cell runs is not what it computes: the key ignores it.
    elsewhere = make_sweep(content, style, StylizeConfig(size=64, threads=3), [ratio, layers])
    assert [c.key for c in cells(elsewhere, "0" * 64)] == [c.key for c in grid]


def test_a_batch_is_contents_by_styles_named_after_its_images(make_image, tmp_path):
    (tmp_path / "more").mkdir()
    a, b = make_image("a.png"), make_image("b.png", seed=2)
    other_a = make_image("more/a.png", seed=3)  # the same name in another folder
    s1, s2 = make_image("s1.png", seed=1), make_image("s2.png", seed=4)
    batch = make_batch([a, b, other_a], [s1, s2], StylizeConfig(size=64))
    assert (batch.rows.kind, batch.cols.kind) == (AxisKind.CONTENT, AxisKind.STYLE) and batch.is_batch
    assert batch.rows.labels == (str(a), "b.png", str(other_a)) and batch.cols.labels == ("s1.png", "s2.png")
    grid = cells(batch, "0" * 64)
    assert [(c.content, c.style) for c in grid] == [(x, y) for x in (a, b, other_a) for y in (s1, s2)]
    assert [c.stem.rsplit("-", 1)[0] for c in grid] == ["a.s1", "a.s2", "b.s1", "b.s2", "a.s1", "a.s2"]
    assert len({c.key for c in grid}) == 6  # the images are in the key: the two a.png differ
    assert all(c.config == batch.base for c in grid)
    # A photo added in front moves the others down the sheet, not their names.
    grown = cells(make_batch([make_image("0.png", seed=5), a, b, other_a], [s1, s2], batch.base), "0" * 64)
    assert [c.stem for c in grown[2:]] == [c.stem for c in grid]


def test_a_batch_refuses_no_images_and_an_image_twice(make_image):
    a, s = make_image("a.png"), make_image("s.png")
    with pytest.raises(NstError, match="no style image given"):
        make_batch([a], [], StylizeConfig())
    with pytest.raises(NstError, match=f"{a}: given twice as a content image"):
        make_batch([a, a.parent / "." / a.name], [s], StylizeConfig())
