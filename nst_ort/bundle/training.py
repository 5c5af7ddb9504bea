"""The ort-training bundle: onnxruntime-training's artifacts, with this run's values in the checkpoint.

The training model and optimizer model of the cached per-size artifacts, and a checkpoint whose
values are this run's: the initial image as the trainable parameter, the content and style
targets and the loss weights as frozen parameters. The optimiser is Adam, run by ONNX Runtime
itself (its optimizer model), because that is the only optimiser every training API has; L-BFGS
needs scipy, which an embedded runtime lacks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nst_ort import contract
from nst_ort.backends.artifacts import Artifacts, ensure
from nst_ort.backends.ort import session_options
from nst_ort.bundle.driver import TRAINING_VERSION, training_api
from nst_ort.config import StylizeConfig
from nst_ort.engine import Engine

VERSION = TRAINING_VERSION
FILES = {
    "training_model": "training_model.onnx",
    "optimizer_model": "optimizer_model.onnx",
    "checkpoint": "checkpoint",
}
FIXED_LEARNING_RATE = "bundle.learning_rate"
LOOP = [
    "load the checkpoint; create a training session with the training and optimizer models",
    "repeat iterations times: reset gradients (lazy), train step, optimizer step, "
    "clip the image parameter to [0, 1]",
    "read the image parameter: NCHW float32 RGB in [0, 1]",
]


def fix_learning_rate(source: Path, destination: Path, lr: float) -> dict:
    """Copy the optimizer model with its learning rate fixed to `lr`; return Adam's settings.

    ONNX Runtime feeds the optimizer model a `learning_rate` input from its own state, but that
    state cannot be set everywhere: a checkpoint restores only the initial learning rate (the
    current one falls back to 0.001), and the JavaScript training API has no setter. A constant
    in the graph gives every driver the same steps. The input stays, unused, because ONNX Runtime
    checks the optimizer model's input names.
    """
    model = onnx.load(str(source))
    graph = model.graph
    adam = next(node for node in graph.node if node.op_type == "AdamWOptimizer")
    constant = helper.make_node(
        "Constant",
        [],
        [FIXED_LEARNING_RATE],
        value=numpy_helper.from_array(np.array([lr], np.float32), FIXED_LEARNING_RATE),
    )
    graph.node.insert(0, constant)
    adam.input[0] = FIXED_LEARNING_RATE
    onnx.save(model, str(destination))
    attrs = {a.name: helper.get_attribute_value(a) for a in adam.attribute}
    return {
        "name": "adam",
        "learning_rate": lr,
        "betas": [float32(attrs["alpha"]), float32(attrs["beta"])],
        "eps": float32(attrs["epsilon"]),
        "weight_decay": float32(attrs["weight_decay"]),
        "bias_correction": bool(attrs["correct_bias"]),
        # adam_mode 0 is torch.optim.Adam's update; 1 is Hugging Face's AdamW (eps inside).
        "update": "torch.optim.Adam" if attrs.get("adam_mode", 0) == 0 else "transformers.AdamW",
    }


def write_checkpoint(
    entry: Artifacts, values: dict[str, np.ndarray], path: Path
) -> tuple[list[str], list[str]]:
    """The cached checkpoint with this run's image, targets and weights written into it.

    Returns the training model's user inputs and outputs, as every training API reports them.
    """
    api = training_api()
    state = api.CheckpointState.load_checkpoint(str(entry.checkpoint))
    # Parameters get their buffers when a Module is created (setting one before segfaults), and
    # copying into them needs the live Module.
    module = api.Module(str(entry.training_model), state, device="cpu", session_options=session_options())
    parameters = state.parameters
    missing = set(entry.frozen) | {contract.IMAGE}
    missing -= set(values)
    if missing:
        raise ValueError(f"no values for parameters {sorted(missing)}")
    for name, value in values.items():
        parameters[name].data = np.array(value, np.float32, order="C")  # keeps 0-d shapes
    api.CheckpointState.save_checkpoint(state, str(path))
    return list(module.input_names()), list(module.output_names())


def float32(value: float) -> float:
    """The shortest decimal of a float32 attribute: 1e-08, not 9.99999993922529e-09."""
    return float(str(np.float32(value)))


def write(
    engine: Engine, config: StylizeConfig, values: dict[str, np.ndarray], folder: Path
) -> tuple[dict, bool]:
    """Write this backend's files into `folder`; return their bundle.json sections and whether
    the artifacts had to be built. `values` holds the image, the targets and the weights."""
    _, _, height, width = values[contract.IMAGE].shape
    entry = ensure(engine.model, engine.info.sha256, config.loss, height, width, engine.cache_root)
    shutil.copyfile(entry.training_model, folder / FILES["training_model"])
    optimizer = fix_learning_rate(entry.optimizer_model, folder / FILES["optimizer_model"], config.lr)
    inputs, outputs = write_checkpoint(entry, values, folder / FILES["checkpoint"])
    sections = {
        "files": FILES,
        "parameters": {"trainable": [contract.IMAGE], "frozen": sorted(entry.frozen)},
        "training_model": {
            # What a training session reports: the image and the frozen parameters come from
            # the checkpoint, so a train step takes no inputs. The loss graph makes every output
            # a scalar.
            "inputs": inputs,
            "outputs": [{"name": name, "shape": [], "dtype": "float32"} for name in outputs],
            "loss": contract.LOSS,
        },
        "optimizer": {**optimizer, "iterations": config.iterations, "clip": [0.0, 1.0]},
        "loop": LOOP,
    }
    return sections, entry.built
