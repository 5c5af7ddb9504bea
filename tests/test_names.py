import pytest

from nst_ort import names
from nst_ort.names import Arch


@pytest.mark.parametrize(("arch", "convs"), [(Arch.VGG16, 13), (Arch.VGG19, 16)])
def test_layer_sequence_has_caffe_names(arch, convs):
    sequence = names.layer_sequence(arch)
    assert len(names.conv_layers(arch)) == convs
    assert sequence[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert sequence[-1] == "pool5"
    assert ("relu5_4" in sequence) == (arch is Arch.VGG19)


@pytest.mark.parametrize(
    ("layer", "channels", "downsampling"),
    [("relu1_1", 64, 1), ("relu2_2", 128, 2), ("relu4_2", 512, 8), ("relu5_1", 512, 16), ("pool1", 64, 2)],
)
def test_layer_geometry(layer, channels, downsampling):
    assert names.layer_channels(layer) == channels
    assert names.layer_downsampling(layer) == downsampling


def test_parse_layers_with_weights_and_all():
    available = names.loss_layers(Arch.VGG16)
    assert names.parse_layers("relu1_1:0.5, relu2_1", available, "style") == {"relu1_1": 0.5, "relu2_1": 1.0}
    assert list(names.parse_layers("all", available, "style")) == available


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("relu9_9", "unknown style layer 'relu9_9'; available: relu1_1"),
        ("relu1_1:x", "not a number"),
        ("", "no style"),
    ],
)
def test_parse_layers_rejects_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        names.parse_layers(spec, names.loss_layers(Arch.VGG16), "style")


def test_deepest_layer():
    assert names.deepest(Arch.VGG19, ["relu1_1", "relu5_1", "relu4_2"]) == "relu5_1"
