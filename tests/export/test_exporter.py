"""The exported graph against torch, and its metadata (its interface: tests/test_contract.py)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.contract import Arch, ExportSpec, Pooling
from nst_ort.model import load_model
from nst_ort.targets import TargetComputer
from tests.requires import TORCH

torch = pytest.importorskip("torch", reason=TORCH)

from export.exporter import build_loss_module, example_inputs, export_model  # noqa: E402
from export.weights import random_weights  # noqa: E402


def run_graph(path, module, height, width, seed):
    inputs = example_inputs(module, height, width, seed=seed)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(module.input_names(), inputs, strict=True)}
    actual = session.run(module.output_names(), feeds)
    with torch.no_grad():
        desired = [t.numpy() for t in module(*inputs)]
    return dict(zip(module.output_names(), actual, strict=True)), dict(
        zip(module.output_names(), desired, strict=True)
    )


@pytest.mark.parametrize("arch", [Arch.VGG16, Arch.VGG19])
@pytest.mark.parametrize("pooling", [Pooling.AVG, Pooling.MAX])
def test_graph_matches_torch_at_a_new_size(tmp_path, arch, pooling):
    spec = ExportSpec(arch, pooling, content_layers=("relu2_2",), style_layers=("relu1_1", "relu3_1"))
    weights = random_weights(arch, 1)
    path = tmp_path / "m.onnx"
    export_model(path, spec, weights)
    module = build_loss_module(spec, weights)
    actual, desired = run_graph(path, module, 37, 53, seed=7)  # not a validation size
    for name in module.output_names():
        np.testing.assert_allclose(
            actual[name], desired[name], rtol=1e-4, atol=1e-4 * np.abs(desired[name]).max()
        )


def test_metadata_describes_the_export(tiny_model):
    _, info = load_model(tiny_model)
    assert info.format_version == contract.FORMAT_VERSION
    assert info.arch is Arch.VGG16 and info.pooling is Pooling.AVG
    assert info.weights == "random:0"
    assert info.weights_sha256 == random_weights(Arch.VGG16, 0).sha256()
    # Every layer by default, for content and for style.
    assert info.content_layers == info.style_layers == tuple(contract.loss_layers(Arch.VGG16))
    assert info.preprocessing["mean"] == [0.485, 0.456, 0.406]
    assert info.torch_version == torch.__version__


def test_graph_ends_at_the_deepest_layer(tmp_path):
    spec = ExportSpec(Arch.VGG19, content_layers=("relu2_1",), style_layers=("relu1_1",))
    export_model(tmp_path / "m.onnx", spec, random_weights(Arch.VGG19))
    model = onnx.load(str(tmp_path / "m.onnx"))
    kernels = [i for i in model.graph.initializer if len(i.dims) == 4 and i.dims[2] == 3]
    assert len(kernels) == 3  # conv1_1, conv1_2, conv2_1


def test_bgr_weights_see_rgb_input(tmp_path):
    # Caffe weights expect BGR 0-255 minus the mean: the graph must do the conversion itself.
    from export.network import CAFFE

    weights = random_weights(Arch.VGG16, 2)
    caffe = type(weights)(weights.convs, CAFFE, "caffe-test")
    spec = ExportSpec(content_layers=("relu1_1",), style_layers=("relu1_1",))
    export_model(tmp_path / "m.onnx", spec, caffe)
    model, _ = load_model(tmp_path / "m.onnx")
    targets = TargetComputer(model, LossSpec(content_layers={"relu1_1": 1.0}, style_layers={}), "cpu")
    image = np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)
    actual = targets.features(image)["content.relu1_1.features"]
    image = image.transpose(2, 0, 1)[None]
    bgr = image[:, ::-1] * 255 - np.array(CAFFE.mean, np.float32).reshape(1, 3, 1, 1)
    kernel, bias = (torch.from_numpy(a) for a in caffe.convs["conv1_1"])
    desired = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(bgr.copy()), kernel, bias, padding=1))
    np.testing.assert_allclose(actual, desired.numpy(), rtol=1e-4, atol=1e-3)
