"""Write the loss and gradient graphs to one self-contained ONNX file, then check them against torch."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from export.gradient import (
    GRADIENT_GRAPH,
    StyleTransferGradient,
    derive_flipped_kernels,
    with_activation_inputs,
)
from export.losses import StyleTransferLoss, gram, projections, quantiles
from export.network import VGGFeatures
from export.weights import Weights
from nst_ort import contract
from nst_ort.contract import ExportSpec
from nst_ort.errors import FAILURE, NstError
from nst_ort.files import write_bytes

OPSET = 17  # onnxruntime-training 1.19.2 runs opset <= 21 and IR <= 10
IR_VERSION = 8  # what opset 17 needs; well inside what every ORT build reads
TOLERANCE = 1e-4  # relative error allowed between ONNX Runtime and torch at validation
# The sliced terms' gradients hold P − T(P), T read from ranks in a histogram: the
# rank's slope (bins / range) amplifies the projections' float32 rounding, up to 3.1e-4 measured
# at the validation sizes, where a deep layer has 20 positions, and 5.8e-4 on VGG-19's relu5_3
# with random weights (a 2-core AMD EPYC; spread over a tenth of the values, not one flipped bin).
# The gradients from deeper layers carry those terms too; the Gram and content terms' own
# gradients keep TOLERANCE.
SLICED_GRAD_TOLERANCE = 1e-3
VALIDATION_SIZES = ((64, 80), (96, 72))  # two sizes, odd pooling cases included (72/8=9)


def build_loss_module(spec: ExportSpec, weights: Weights) -> StyleTransferLoss:
    layers = list(spec.content_layers) + list(spec.style_layers)
    features = VGGFeatures(
        spec.arch,
        spec.pooling,
        contract.deepest(spec.arch, layers),
        weights.preprocessing,
        weights.as_torch(),
    )
    return StyleTransferLoss(features, list(spec.content_layers), list(spec.style_layers)).eval()


def example_inputs(
    module: StyleTransferLoss, height: int, width: int, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A random image, with targets taken from another random image, and random weights."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=gen)
    other = torch.rand(1, 3, height, width, generator=gen)
    with torch.no_grad():
        feats = module.features(other, set(module.content_layers) | set(module.style_layers))
    content = [feats[layer] for layer in module.content_layers]
    style = [gram(feats[layer]) for layer in module.style_layers]
    directions = [
        torch.linalg.qr(torch.randn(c, c, generator=gen))[0].t().contiguous()
        for c in (feats[layer].shape[1] for layer in module.style_layers)
    ]
    quantile_targets = [
        quantiles(projections(feats[layer], d))
        for layer, d in zip(module.style_layers, directions, strict=True)
    ]
    # α, β, γ and the TV's colour weight.
    scalars = [torch.rand((), generator=gen) + 0.5 for _ in range(4)]
    layer_weights = [
        torch.rand((), generator=gen) + 0.5
        for _ in range(len(module.content_layers) + len(module.style_layers))
    ]
    return (image, *content, *style, *directions, *quantile_targets, *scalars, *layer_weights)


def to_onnx(module: StyleTransferLoss) -> onnx.ModelProto:
    inputs = example_inputs(module, *VALIDATION_SIZES[0])
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which constant-folds or
        # mis-names this graph's many named inputs; the TorchScript one still exports it exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            inputs,
            buffer,
            input_names=module.input_names(),
            output_names=module.output_names(),
            dynamic_axes=module.dynamic_axes(),
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = IR_VERSION
    return model


def describe(model: onnx.ModelProto, spec: ExportSpec, weights: Weights) -> None:
    meta = {
        contract.META_FORMAT_VERSION: str(contract.FORMAT_VERSION),
        contract.META_ARCH: spec.arch.value,
        contract.META_WEIGHTS: weights.source,
        contract.META_WEIGHTS_SHA256: weights.sha256(),
        contract.META_POOLING: spec.pooling.value,
        contract.META_CONTENT_LAYERS: ",".join(spec.content_layers),
        contract.META_STYLE_LAYERS: ",".join(spec.style_layers),
        contract.META_PREPROCESSING: json.dumps(weights.preprocessing.as_dict()),
        contract.META_TORCH_VERSION: torch.__version__,
        contract.META_ONNX_VERSION: onnx.__version__,
        contract.META_GRADIENT_GRAPH: GRADIENT_GRAPH,
        contract.META_STYLE_LOSSES: ",".join(kind.value for kind in contract.StyleLoss),
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name = "nst-ort"
    model.doc_string = (
        "Gatys et al. (2015) style-transfer loss on a VGG feature stack. Input 'image' is "
        "RGB in [0, 1], NCHW, batch 1; targets and weights are inputs; see nst_ort/contract.py. "
        "Output 'image.grad' is dL/dimage, its backward pass made of forward operators."
    )


def _relative_error(actual: np.ndarray, desired: np.ndarray) -> float:
    return float(np.max(np.abs(actual - desired)) / max(float(np.max(np.abs(desired))), 1e-30))


def validate(model: onnx.ModelProto, module: StyleTransferGradient) -> float:
    """Run the ONNX graph in ONNX Runtime and torch at two sizes; return the worst relative error.

    The forward outputs come from the whole graph. The gradient outputs come from the graph at
    torch's ReLU activations (gradient.with_activation_inputs), against the torch module's own
    backward pass and, for dL/dimage, against autograd: that checks the derivation too.
    """
    onnx.checker.check_model(model)
    try:
        import onnxruntime as ort
    except ImportError:
        raise NstError("validating the export needs onnxruntime: pip install 'nst-ort[cpu]'") from None
    backward, activation_inputs = with_activation_inputs(model, module)
    sessions = [
        ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
        for graph in (model, backward)
    ]
    forward_names = StyleTransferLoss.output_names(module)
    gradient_names = [o.name for o in backward.graph.output]
    sliced_grads = {contract.sliced_grad(layer) for layer in module.style_layers} | {
        contract.deeper_grad(layer) for layer in module.loss_layers
    }
    worst = 0.0
    for seed, (height, width) in enumerate(VALIDATION_SIZES):
        inputs = example_inputs(module, height, width, seed=seed)
        desired, activations, autograd = module.reference(*inputs)
        desired[contract.IMAGE_GRAD] = autograd
        feeds = {n: t.numpy() for n, t in zip(module.input_names(), inputs, strict=True)}
        actual = dict(zip(forward_names, sessions[0].run(forward_names, feeds), strict=True))
        feeds.update({activation_inputs[layer]: activations[layer].numpy() for layer in activation_inputs})
        actual.update(zip(gradient_names, sessions[1].run(gradient_names, feeds), strict=True))
        for name in module.output_names():
            error = _relative_error(actual[name], desired[name].numpy())
            tolerance = SLICED_GRAD_TOLERANCE if name in sliced_grads else TOLERANCE
            if not error <= tolerance:  # also catches NaN
                raise NstError(
                    f"export check failed: {name} differs from torch by {error:.2e} "
                    f"(relative) at {height}x{width}",
                    FAILURE,
                )
            worst = max(worst, error)
    return worst


def export_model(path: Path, spec: ExportSpec, weights: Weights) -> float:
    """Export, describe, validate, then write atomically. Returns the validation error."""
    module = StyleTransferGradient(build_loss_module(spec, weights))
    model = to_onnx(module)
    derive_flipped_kernels(model, list(module.features.convs))
    describe(model, spec, weights)
    error = validate(model, module)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, model.SerializeToString())
    return error
