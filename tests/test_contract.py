"""The contract's layer names and geometry, shared by the exporter and the runtime, and the
interface of an export."""

import onnx
import pytest

from nst_ort import contract
from nst_ort.contract import Arch


@pytest.mark.parametrize(("arch", "convs"), [(Arch.VGG16, 13), (Arch.VGG19, 16)])
def test_layer_sequence_has_caffe_names(arch, convs):
    sequence = contract.layer_sequence(arch)
    assert len(contract.conv_layers(arch)) == convs
    assert sequence[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert sequence[-1] == "pool5"
    assert ("relu5_4" in sequence) == (arch is Arch.VGG19)


@pytest.mark.parametrize(
    ("layer", "channels", "downsampling"),
    [("relu1_1", 64, 1), ("relu2_2", 128, 2), ("relu4_2", 512, 8), ("relu5_1", 512, 16), ("pool1", 64, 2)],
)
def test_layer_geometry(layer, channels, downsampling):
    assert contract.layer_channels(layer) == channels
    assert contract.layer_downsampling(layer) == downsampling


def test_deepest_layer():
    assert contract.deepest(Arch.VGG19, ["relu1_1", "relu5_1", "relu4_2"]) == "relu5_1"


def test_graph_interface_is_the_public_contract(tiny_model):
    model = onnx.load(str(tiny_model))
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    assert inputs[0] == contract.IMAGE
    assert "style.relu3_1.gram_target" in inputs and "content.relu4_2.target" in inputs
    assert {contract.ALPHA, contract.BETA, contract.GAMMA, "style.relu5_1.weight"} <= set(inputs)
    assert outputs[:4] == list(contract.TERMS)
    assert {"style.relu1_1.gram", "content.relu5_2.features", "style.relu2_1.loss"} <= set(outputs)
    image = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in image[:2]] == [1, 3] and all(d.dim_param for d in image[2:])
    assert model.ir_version <= 10 and max(o.version for o in model.opset_import if o.domain == "") <= 21
    onnx.checker.check_model(model)
