"""The one grammar for layer and number lists: weights, all, ranges, sets, cumulative:, numbers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nst_ort import contract, layerspec
from nst_ort.contract import Arch
from nst_ort.errors import NstError

LAYERS = contract.loss_layers(Arch.VGG16)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def test_weighted_layers_with_weights_and_all():
    assert layerspec.weighted_layers("relu1_1:0.5, relu2_1", LAYERS, "style") == {
        "relu1_1": 0.5,
        "relu2_1": 1.0,
    }
    assert list(layerspec.weighted_layers("all", LAYERS, "style")) == LAYERS


def test_weighted_layers_with_a_range():
    actual = layerspec.weighted_layers("relu2_1..relu4_1:0.25,relu5_1", STYLE_LAYERS, "style")
    desired = {"relu2_1": 0.25, "relu3_1": 0.25, "relu4_1": 0.25, "relu5_1": 1.0}
    assert actual == desired


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("relu9_9", "unknown style layer 'relu9_9'; available: relu1_1"),
        ("relu1_1:x", "not a number"),
        ("", "no style"),
        ("relu1_1:-1", "style layer weight '-1' for relu1_1 must be a finite number, 0 or more"),
        ("relu1_1:nan", "style layer weight 'nan' for relu1_1 must be a finite number, 0 or more"),
        ("relu1_1:inf", "must be a finite number, 0 or more"),
        ("relu1_1:-inf", "must be a finite number, 0 or more"),
    ],
)
def test_weighted_layers_rejects_bad_specs(spec, message):
    with pytest.raises(NstError, match=message):
        layerspec.weighted_layers(spec, LAYERS, "style")


def test_a_layer_the_model_lacks_says_what_to_do():
    with pytest.raises(NstError) as error:
        layerspec.weighted_layers("relu3_3", STYLE_LAYERS, "style")
    assert str(error.value) == (
        "unknown style layer 'relu3_3'; available: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 "
        "(not in this export; `nst-ort export` exports every layer of its network)"
    )


def test_weighted_layers_on_arbitrary_text():
    @settings(max_examples=200, deadline=None)
    @given(st.text(max_size=40))
    def check(spec):
        try:
            parsed = layerspec.weighted_layers(spec, LAYERS, "style")
        except NstError as exc:
            assert "\n" not in str(exc)
        else:
            assert parsed and set(parsed) <= set(LAYERS)
            assert all(weight >= 0 for weight in parsed.values())

    check()


@pytest.mark.parametrize(
    ("text", "desired"),
    [
        ("relu1_1,relu3_1", ([("relu1_1",), ("relu3_1",)], False)),
        ("relu2_1..relu4_1", ([("relu2_1",), ("relu3_1",), ("relu4_1",)], False)),
        ("relu1_1+relu2_1,relu5_1", ([("relu1_1", "relu2_1"), ("relu5_1",)], False)),
        (
            "cumulative:relu1_1..relu3_1",
            ([("relu1_1",), ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1", "relu3_1")], True),
        ),
    ],
)
def test_layer_sets(text, desired):
    assert layerspec.layer_sets(text, STYLE_LAYERS, "style") == desired


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("relu9_1", "unknown style layer 'relu9_1'"),
        ("relu3_1..relu1_1", "runs backwards"),
        ("cumulative:relu1_1+relu2_1", "not '+' sets"),
        (" , ", "no style layers given"),
    ],
)
def test_layer_sets_refuse(text, message):
    with pytest.raises(NstError) as error:
        layerspec.layer_sets(text, STYLE_LAYERS, "style")
    assert message in str(error.value)


def test_layer_list_expands_ranges_once_each():
    actual = layerspec.layer_list("relu1_1..relu3_1,relu2_1,relu5_1", STYLE_LAYERS, "style")
    assert actual == ["relu1_1", "relu2_1", "relu3_1", "relu5_1"]


def test_numbers():
    assert layerspec.numbers("1e-5, 2.5e-3,", "`ratio`") == (1e-5, 2.5e-3)
    assert layerspec.whole_numbers("256,512", "`scales`") == (256, 512)
    with pytest.raises(NstError, match=r"`ratio`: expected comma-separated numbers, got 'a'"):
        layerspec.numbers("a", "`ratio`")
    with pytest.raises(NstError, match="expected comma-separated whole numbers, got '1.5'"):
        layerspec.whole_numbers("1.5", "`scales`")


@pytest.mark.parametrize(
    "layers", [{"relu4_2": 1.0}, {"relu1_1": 0.2, "relu2_1": 0.2}, {"relu1_2": 1.0, "relu5_2": 0.5}]
)
def test_format_layers_is_the_inverse(layers):
    assert layerspec.weighted_layers(layerspec.format_layers(layers), LAYERS, "content") == layers
