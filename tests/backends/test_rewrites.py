"""Rewrites of the training graph (ConvGrad -> Conv, ReluGrad -> Sign, Mul): same gradients as torch
(as the gradient graph, for max pooling)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nst_ort import contract
from nst_ort.backends import artifacts
from nst_ort.backends.graph import GraphGradient
from nst_ort.backends.rewrites import conv_grads_as_convs, relu_grads_as_masks
from nst_ort.backends.training import TrainingBackend
from nst_ort.config import LossSpec
from nst_ort.graphs import target_shapes, weight_values
from nst_ort.model import load_model
from nst_ort.targets import TargetComputer
from tests.requires import needs_torch, needs_training

TOLERANCE = 1e-4  # relative to the largest gradient entry; float32 sums over a few thousand terms


def relative_error(actual: np.ndarray, desired: np.ndarray) -> float:
    return float(np.max(np.abs(actual - desired)) / np.max(np.abs(desired)))


@pytest.fixture(scope="module")
def exports(tiny_model, tmp_path_factory):
    """pooling -> a random-weight export with the default layers: tiny_model for avg, and
    the same weights with max pooling (whose training graph keeps ReluGrad on pre-activations)."""
    made = {contract.Pooling.AVG: tiny_model}

    def get(pooling: contract.Pooling) -> Path:
        if pooling not in made:
            from export.exporter import ExportSpec, export_model
            from export.weights import random_weights

            path = tmp_path_factory.mktemp("rewrites") / f"{pooling.value}.onnx"
            export_model(path, ExportSpec(pooling=pooling), random_weights(contract.Arch.VGG16, seed=0))
            made[pooling] = path
        return made[pooling]

    return get


POOLINGS = [contract.Pooling.AVG, pytest.param(contract.Pooling.MAX, marks=needs_torch)]


@needs_training
@pytest.mark.parametrize("pooling", POOLINGS, ids=lambda p: p.value)
def test_artifacts_hold_no_convgrad_or_relugrad(exports, pooling, tmp_path):
    model, info = load_model(exports(pooling))
    entry = artifacts.ensure(model, info.sha256, LossSpec(), 64, 80, tmp_path)

    train = onnx.load(str(entry.training_model))
    ops = [node.op_type for node in train.graph.node]

    # VGG-16 up to conv5_1 (the default loss's deepest layer): 11 convolutions, each forward
    # and backward, and 11 ReLUs, whose gradients become masks.
    assert "ConvGrad" not in ops
    assert "ReluGrad" not in ops
    assert ops.count("Conv") == 2 * 11
    assert ops.count("Sign") == 11


@pytest.mark.parametrize("pooling", POOLINGS, ids=lambda p: p.value)
@pytest.mark.parametrize(("height", "width"), [(64, 80), (72, 56)])
@needs_training
@needs_torch
def test_gradient_matches_torch_autograd(exports, pooling, tmp_path, height, width):
    import torch

    from export.exporter import ExportSpec, build_loss_module
    from export.weights import random_weights

    spec = LossSpec(tv_weight=0.5)
    model, info = load_model(exports(pooling))
    rng = np.random.default_rng(1)
    content, style = rng.random((2, height, width, 3), dtype=np.float32)
    computer = TargetComputer(model, spec, "cpu")
    targets = {
        **computer.content_targets(content),
        **computer.style_targets([style], [1.0], (height, width), 1.0),
    }
    weights = weight_values(spec)
    entry = artifacts.ensure(model, info.sha256, spec, height, width, tmp_path)
    backend = TrainingBackend(entry, {**targets, **weights}, "cpu")
    image = rng.random((1, 3, height, width), dtype=np.float32)

    terms, actual = backend.value_and_grad(image)

    module = build_loss_module(
        ExportSpec(
            pooling=pooling,
            content_layers=tuple(spec.content_layers),
            style_layers=tuple(spec.style_layers),
        ),
        random_weights(contract.Arch.VGG16, seed=0),  # the weights the exports were made with
    )
    # The module has the sliced style term too: zero directions and targets make it zero.
    sliced = replace(spec, style_loss=contract.StyleLoss.SLICED)
    zeros = {
        name: np.zeros(shape, np.float32) for name, shape in target_shapes(sliced, height, width).items()
    }
    feeds = {**zeros, **targets, **weights}
    inputs = [torch.from_numpy(feeds[name]) for name in module.input_names()[1:]]
    x = torch.from_numpy(image).requires_grad_(True)
    loss = module(x, *inputs)[0]
    loss.backward()
    desired = x.grad.numpy()

    assert terms[contract.LOSS] == pytest.approx(loss.item(), rel=TOLERANCE)
    if pooling is contract.Pooling.MAX:
        # A max-pooling window whose two largest values lie within rounding of each other routes
        # its gradient by the forward pass that computed them: ONNX Runtime's and torch's differ in
        # the last bits, and on some CPUs a window 2e-6 apart goes the other way (64x80 here: 4%
        # of the pixels off by up to 1%). So for max pooling the reference is the export's
        # gradient graph run by ONNX Runtime on the same forward arithmetic; test_graph.py checks
        # that graph against torch autograd at torch's own activations.
        graph = GraphGradient(model, "cpu", 0).prepare(spec, {**targets, **weights}, height, width)
        _, desired = graph.objective.value_and_grad(image)
    assert relative_error(actual, desired) <= TOLERANCE


def _one_conv_then_strided(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """loss = Σ y² + Σ z², y = conv(x) with a 3x2 kernel and uneven pads, z = stride-2 conv(y)."""
    rng = np.random.default_rng(0)
    values = {
        "x": rng.standard_normal((1, 2, 7, 6)).astype(np.float32),
        "w": rng.standard_normal((4, 2, 3, 2)).astype(np.float32),
        "v": rng.standard_normal((3, 4, 3, 3)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 2], pads=[0, 1, 2, 0]),
        helper.make_node("Conv", ["y", "v"], ["z"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Mul", ["y", "y"], ["yy"]),
        helper.make_node("Mul", ["z", "z"], ["zz"]),
        helper.make_node("ReduceSum", ["yy"], ["sy"], keepdims=0),
        helper.make_node("ReduceSum", ["zz"], ["sz"], keepdims=0),
        helper.make_node("Add", ["sy", "sz"], ["loss"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [],
        [helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(v, k) for k, v in values.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    from onnxruntime.training import artifacts as ort_artifacts

    ort_artifacts.generate_artifacts(
        model,
        requires_grad=["x"],
        loss=None,
        optimizer=ort_artifacts.OptimType.SGD,
        artifact_directory=str(tmp_path),
    )
    return tmp_path, values


def _input_gradient(directory: Path) -> np.ndarray:
    from onnxruntime.training import api

    state = api.CheckpointState.load_checkpoint(str(directory / "checkpoint"))
    module = api.Module(str(directory / "training_model.onnx"), state, device="cpu")
    module.train()
    module.lazy_reset_grad()
    module()
    return np.array(state.parameters["x"].grad)


@needs_training
@needs_torch
def test_rewrite_handles_uneven_pads_and_leaves_strided_convs(tmp_path):
    import torch
    import torch.nn.functional as F

    directory, values = _one_conv_then_strided(tmp_path)
    path = directory / "training_model.onnx"
    model = onnx.load(str(path))
    model.ir_version = min(model.ir_version, artifacts.ORT_MAX_IR_VERSION)

    replaced = conv_grads_as_convs(model)
    onnx.save(model, str(path))

    x = torch.from_numpy(values["x"]).requires_grad_(True)
    # ONNX pads [h_begin, w_begin, h_end, w_end]; F.pad wants (w_begin, w_end, h_begin, h_end).
    y = F.conv2d(F.pad(x, (1, 0, 0, 2)), torch.from_numpy(values["w"]))
    z = F.conv2d(y, torch.from_numpy(values["v"]), stride=2, padding=1)
    ((y * y).sum() + (z * z).sum()).backward()
    desired = x.grad.numpy()
    actual = _input_gradient(directory)

    # The stride-2 conv keeps its ConvGrad (its own input gradient, which y needs), the other
    # one becomes a Conv.
    assert replaced == 1
    assert [n.op_type for n in model.graph.node].count("ConvGrad") == 1
    assert relative_error(actual, desired) <= TOLERANCE


def test_relu_grad_masks_come_from_relu_outputs():
    """ReluGrad on a Relu's output or on its input (before a MaxPool the training graph keeps
    the input) both become Sign of the output; Sign(x) of a pre-activation would be -1 for
    negatives. A ReluGrad of any other tensor is left alone."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["y"]),
            helper.make_node("ReluGrad", ["dy", "y"], ["dx"], domain="com.microsoft"),
            helper.make_node("ReluGrad", ["dy", "x"], ["dx2"], domain="com.microsoft"),
            helper.make_node("ReluGrad", ["dy", "z"], ["dx3"], domain="com.microsoft"),
        ],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("x", "dy", "z")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("dx", "dx2", "dx3")],
    )
    model = helper.make_model(graph)

    replaced = relu_grads_as_masks(model)

    assert replaced == 2
    assert [(n.op_type, list(n.input)) for n in model.graph.node] == [
        ("Relu", ["x"]),
        ("Sign", ["y"]),
        ("Mul", ["dy", "dx.relu_mask"]),
        ("Sign", ["y"]),
        ("Mul", ["dy", "dx2.relu_mask"]),
        ("ReluGrad", ["dy", "z"]),
    ]
