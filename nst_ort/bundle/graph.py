"""The ort-graph bundle: the export's gradient graph at the bundle's size, and its inputs' values.

model.onnx is the gradient graph of the run's layers (nst_ort.graphs.gradient_graph: forward
operators only, so any ONNX Runtime, in any language or a browser, runs it in a plain inference
session) with the shapes fixed to the bundle's size, and one more set of outputs: the features
and Grams of its input image for the layers in use (bundle.json `model.targets`). Run on a photo
and on a painting instead of the image being optimised, it gives their targets, so a driver can
offer the user's own pictures at the bundle's size without a second model and its weights.

The targets and the loss weights are graph inputs, their values in inputs.bin (tensors, float32
little-endian) and bundle.json (scalars): a driver binds them once, or replaces the targets with
ones it computed. VGG's weights stay initializers inside the model, where ONNX Runtime packs and
folds them. Adam runs in the driver, on the host: every ONNX Runtime has inference sessions,
none but the deprecated training builds has an optimiser.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from nst_ort import contract
from nst_ort.bundle.driver import GRAPH_VERSION
from nst_ort.config import LossSpec, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.graphs import gradient_graph, style_target, target_outputs, target_shapes, weight_values
from nst_ort.loop import ADAM_BETAS, ADAM_EPS
from nst_ort.targets import style_term_size

VERSION = GRAPH_VERSION
FILES = {"model": "model.onnx", "inputs": "inputs.bin"}
ARITHMETIC = (
    "m = b1*m + (1-b1)*g and v = b2*v + ((1-b2)*g)*g in float32, the constants rounded to float32; "
    "x -= float32(lr/(1-b1^t))*m / (sqrt(v)/sqrt(1-b2^t) + eps) in float64 from those float32 "
    "values (lr/(1-b1^t)*m as a float32 product), x rounded back to float32"
)
LOOP = [
    "create an inference session on the model; read its other inputs: tensors from inputs.bin "
    "(float32 little-endian at offset, length values), scalars from their value",
    "image = initial.png / 255: float32 NCHW RGB",
    "repeat iterations times: run the model on the image and the other inputs, fetching the loss "
    "terms and the gradient; stop if a term is not finite (keep the last image); Adam step on the "
    "image with the gradient; clip the image to [0, 1]",
    "the result: NCHW float32 RGB in [0, 1]; as 8 bits, round(v * 255)",
]


def bundle_model(model: onnx.ModelProto, spec: LossSpec, height: int, width: int) -> onnx.ModelProto:
    """The gradient graph with the features and Grams as outputs, every shape fixed to height x width."""
    sub = gradient_graph(model, spec, target_outputs(spec))
    shapes = {contract.IMAGE: (1, 3, height, width), **target_shapes(spec, height, width)}
    shapes.update({name: () for name in weight_values(spec)})
    outputs = {name: () for name in contract.TERMS}
    outputs[contract.IMAGE_GRAD] = shapes[contract.IMAGE]
    for layer in spec.content_layers:
        outputs[contract.content_features(layer)] = shapes[contract.content_target(layer)]
    for layer in spec.style_layers:
        target, output = style_target(spec, layer)
        outputs[output] = shapes[target]
    graph = sub.graph
    inputs = [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, shapes[i.name]) for i in graph.input]
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs.items()
    )
    # The shapes inside were inferred for any size; ONNX Runtime infers them anew for this one.
    del graph.value_info[:]
    return sub


def pack_inputs(
    model: onnx.ModelProto, spec: LossSpec, values: dict[str, np.ndarray]
) -> tuple[list[dict], bytes]:
    """bundle.json's `model.inputs` and inputs.bin: each input's role, shape and where its value is."""
    roles = {contract.IMAGE: "image"}
    roles.update({name: "target" for name in target_shapes(spec, 1, 1)})
    roles.update({name: "weight" for name in weight_values(spec)})
    entries, blob = [], bytearray()
    for graph_input in model.graph.input:
        name = graph_input.name
        shape = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
        entry = {"name": name, "role": roles[name], "shape": shape, "dtype": "float32"}
        if name != contract.IMAGE:
            value = np.asarray(values[name], np.float32)
            if list(value.shape) != shape:
                raise ValueError(f"{name}: value of shape {list(value.shape)}, the model wants {shape}")
            if value.ndim == 0:
                # The shortest decimal of the float32 (0.2, not 0.20000000298023224): a driver
                # that rounds it to float32 gets the same value back.
                entry["value"] = float(str(value))
            else:
                entry.update(offset=len(blob), length=int(value.size))
                blob += value.astype("<f4").tobytes()
        entries.append(entry)
    return entries, bytes(blob)


def _normalizing(spec: LossSpec, weight: str, base: float, scale: float) -> dict:
    """With spec.normalize, the weight input that follows this target (targets.normalized_loss):
    a driver that puts in a target of its own sets that weight to base·scale / Σ target²."""
    if not spec.normalize:
        return {}
    return {"normalize": {"weight": weight, "base": base, "scale": scale}}


def write(
    engine: Engine, config: StylizeConfig, values: dict[str, np.ndarray], folder: Path
) -> tuple[dict, bool]:
    """Write model.onnx and inputs.bin into `folder`; return their bundle.json sections and
    whether anything had to be built (nothing is cached for this backend: False)."""
    _, _, height, width = values[contract.IMAGE].shape
    spec = config.loss
    model = bundle_model(engine.model, spec, height, width)
    inputs, blob = pack_inputs(model, spec, values)
    onnx.save(model, str(folder / FILES["model"]))
    (folder / FILES["inputs"]).write_bytes(blob)
    targets = [
        {
            "input": contract.content_target(layer),
            "output": contract.content_features(layer),
            "image": "content",
            **_normalizing(spec, contract.content_weight(layer), spec.content_layers[layer], 2.0),
        }
        for layer in spec.content_layers
    ] + [
        {
            "input": target,
            "output": output,
            "image": "style",
            **_normalizing(
                spec, contract.style_weight(layer), spec.style_layers[layer], style_term_size(spec, layer)
            ),
        }
        for layer in spec.style_layers
        for target, output in [style_target(spec, layer)]
    ]
    sections = {
        "files": FILES,
        "model": {
            "inputs": inputs,
            "outputs": {"terms": list(contract.TERMS), "gradient": contract.IMAGE_GRAD},
            "loss": contract.LOSS,
            "targets": targets,
            "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
            "operators": sorted({node.op_type for node in model.graph.node}),
        },
        "optimizer": {
            "name": "adam",
            "learning_rate": config.lr,
            "betas": list(ADAM_BETAS),
            "eps": ADAM_EPS,
            "weight_decay": 0.0,
            "bias_correction": True,
            "update": "torch.optim.Adam",
            # Run by the driver, with the reference driver's rounding (bundle/driver.py: Adam).
            "on": "host",
            "arithmetic": ARITHMETIC,
            "iterations": config.iterations,
            "clip": [0.0, 1.0],
        },
        "loop": LOOP,
    }
    return sections, False
