"""What make_bundle writes: the contract files, the fixed learning rate, the checkpoint's values."""

from __future__ import annotations

import json

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.bundle.training import FILES
from nst_ort.bundle.write import INITIAL_IMAGE
from nst_ort.imageio import fit_longest, load_image, resize, to_nchw
from nst_ort.targets import style_for_run
from tests.bundle.conftest import ITERATIONS, LR, pixels

ALL_FILES = {**FILES, "initial_image": INITIAL_IMAGE}


def test_bundle_holds_the_contract_files(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*ALL_FILES.values(), "bundle.json"])
    assert manifest["format"] == "nst-ort-bundle" and manifest["version"] == 1
    assert manifest["files"] == ALL_FILES
    # The 80x64 content fits a longest side of 64.
    assert manifest["image"]["shape"] == [1, 3, 51, 64]
    assert manifest["image"]["range"] == [0.0, 1.0]
    assert manifest["training_model"]["inputs"] == []
    assert [o["name"] for o in manifest["training_model"]["outputs"]] == list(contract.TERMS)
    optimizer = manifest["optimizer"]
    assert (optimizer["name"], optimizer["learning_rate"], optimizer["iterations"]) == (
        "adam",
        LR,
        ITERATIONS,
    )
    assert optimizer["betas"] == [0.9, 0.999] and optimizer["eps"] == 1e-8
    assert manifest["parameters"]["trainable"] == [contract.IMAGE]
    assert pixels(bundle / "initial.png").shape == (51, 64, 3)


def test_optimizer_model_has_the_learning_rate_fixed(bundle):
    graph = onnx.load(str(bundle / FILES["optimizer_model"])).graph
    adam = next(node for node in graph.node if node.op_type == "AdamWOptimizer")
    constant = next(node for node in graph.node if node.output[0] == adam.input[0])
    actual = onnx.numpy_helper.to_array(constant.attribute[0].t)
    np.testing.assert_array_equal(actual, np.array([LR], np.float32))
    # ONNX Runtime checks the optimizer model's input names, so the unused input stays.
    assert [i.name for i in graph.input][0] == "learning_rate"


def engine_targets(inputs, config, engine):
    """The targets `nst-ort stylize` computes for the same images and size."""
    content, style = inputs
    image = load_image(content)
    height, width = fit_longest(*image.shape[:2], config.size)
    styles = [style_for_run(load_image(style), config.size, config.style_scale, config.style_blur)]
    return engine.targets(config.loss, resize(image, height, width), styles, [1.0], 1.0, (height, width))


def test_checkpoint_holds_the_targets_weights_and_initial_image(bundle, inputs, config, engine):
    from onnxruntime.training import api

    desired = dict(engine_targets(inputs, config, engine).frozen)
    desired[contract.IMAGE] = to_nchw(pixels(bundle / "initial.png").astype(np.float32) / 255.0)
    state = api.CheckpointState.load_checkpoint(str(bundle / FILES["checkpoint"]))
    api.Module(str(bundle / FILES["training_model"]), state, device="cpu")  # gives parameters buffers
    assert sorted(name for name, _ in state.parameters) == sorted(desired)
    for name, value in desired.items():
        np.testing.assert_array_equal(state.parameters[name].data, value, err_msg=name)
