"""Graphs derived from an export: the target graph, the per-size training graph, the gradient graph.

All three are cut out of the exported file with onnx's Extractor, so the runtime computes exactly
what the exporter validated against torch; nothing here re-implements a loss term.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.utils import Extractor

from nst_ort import contract
from nst_ort.config import LossSpec


def sliced(spec: LossSpec) -> bool:
    return contract.StyleLoss(spec.style_loss) is contract.StyleLoss.SLICED


def style_target(spec: LossSpec, layer: str) -> tuple[str, str]:
    """A style layer's target input and the export output that makes it from an image: the
    Gram, or for the sliced term the quantiles of the features along the directions."""
    if sliced(spec):
        return contract.style_quantile_target(layer), contract.style_quantiles(layer)
    return contract.style_target(layer), contract.style_gram(layer)


def target_outputs(spec: LossSpec) -> list[str]:
    """The export's outputs the targets are made of: content features, then style_target's."""
    return [contract.content_features(layer) for layer in spec.content_layers] + [
        style_target(spec, layer)[1] for layer in spec.style_layers
    ]


def direction_inputs(spec: LossSpec) -> list[str]:
    """The sliced term's directions, inputs of the target and gradient graphs alike."""
    return [contract.style_directions(layer) for layer in spec.style_layers] if sliced(spec) else []


def targets_graph(model: onnx.ModelProto, spec: LossSpec) -> onnx.ModelProto:
    """image (and directions) -> content features and style Grams (or quantiles) in use."""
    return Extractor(model).extract_model([contract.IMAGE, *direction_inputs(spec)], target_outputs(spec))


def target_shapes(spec: LossSpec, height: int, width: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the target inputs for an output of height x width (the directions count as
    targets: a pass feeds them with the quantiles they were made with)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in spec.content_layers:
        k = contract.layer_downsampling(layer)
        shapes[contract.content_target(layer)] = (1, contract.layer_channels(layer), height // k, width // k)
    for layer in spec.style_layers:
        c = contract.layer_channels(layer)
        if sliced(spec):
            shapes[contract.style_directions(layer)] = (c, c)
            shapes[contract.style_quantile_target(layer)] = (c, contract.QUANTILES)
        else:
            shapes[contract.style_target(layer)] = (c, c)
    return shapes


def weight_values(spec: LossSpec) -> dict[str, np.ndarray]:
    """The scalar weights α, β, γ, the TV's colour weight and w_l as the graph's inputs want them."""
    values = {
        contract.ALPHA: spec.content_weight,
        contract.BETA: spec.style_weight,
        contract.GAMMA: spec.tv_weight,
        contract.TV_CHROMA: spec.tv_chroma,
    }
    values.update({contract.content_weight(k): w for k, w in spec.content_layers.items()})
    values.update({contract.style_weight(k): w for k, w in spec.style_layers.items()})
    return {k: np.asarray(v, np.float32) for k, v in values.items()}


def _weighted_sum(nodes: list, terms: list[tuple[str, str]], out: str) -> None:
    """out = Σ weight·term, as Mul and Add nodes (both have gradient builders)."""
    products = []
    for weight, term in terms:
        products.append(f"{out}.{term}.weighted")
        nodes.append(helper.make_node("Mul", [weight, term], [products[-1]]))
    if not products:
        nodes.append(helper.make_node("Constant", [], [out], value_float=0.0))
        return
    acc = products[0]
    for i, product in enumerate(products[1:], start=1):
        nxt = out if i == len(products) - 1 else f"{out}.partial{i}"
        nodes.append(helper.make_node("Add", [acc, product], [nxt]))
        acc = nxt
    if len(products) == 1:
        nodes.append(helper.make_node("Identity", [acc], [out]))


def _terms_graph(
    model: onnx.ModelProto, spec: LossSpec, cut: list[str], extra_outputs: list[str]
) -> onnx.ModelProto:
    """The per-layer terms of the layers in use (and `extra_outputs`), cut out and re-summed.

    Tensors named in `cut` become inputs, so nothing that only computes them is kept.
    """
    weights = list(weight_values(spec))
    targets = list(target_shapes(spec, 1, 1))
    content_terms = [contract.content_loss(layer) for layer in spec.content_layers]
    style_term = contract.sliced_loss if sliced(spec) else contract.style_loss
    style_terms = [style_term(layer) for layer in spec.style_layers]
    sub = Extractor(model).extract_model(
        [contract.IMAGE, *targets, *weights, *cut],
        [*content_terms, *style_terms, contract.LOSS_TV, *extra_outputs],
    )
    # Extractor keeps only inputs that reach the outputs; all of these do (but cut ones, which
    # the caller removes).
    nodes: list = []
    _weighted_sum(
        nodes,
        [(contract.content_weight(layer), contract.content_loss(layer)) for layer in spec.content_layers],
        contract.LOSS_CONTENT,
    )
    _weighted_sum(
        nodes,
        [(contract.style_weight(layer), style_term(layer)) for layer in spec.style_layers],
        contract.LOSS_STYLE,
    )
    _weighted_sum(
        nodes,
        [
            (contract.ALPHA, contract.LOSS_CONTENT),
            (contract.BETA, contract.LOSS_STYLE),
            (contract.GAMMA, contract.LOSS_TV),
        ],
        contract.LOSS,
    )
    graph = sub.graph
    graph.node.extend(nodes)
    kept = [o for o in graph.output if o.name in extra_outputs]
    del graph.output[:]
    for name in contract.TERMS:
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, []))
    graph.output.extend(kept)
    return sub


def loss_graph(model: onnx.ModelProto, spec: LossSpec) -> onnx.ModelProto:
    """image, targets, weights -> [loss, loss.content, loss.style, loss.tv] for the layers in use.

    The export's own total sums every layer it makes available; a run uses a subset, and cutting
    the graph at the deepest layer in use saves the deeper convolutions. So the per-layer terms
    are cut out and summed again here with the same weights α·Σw_c·C_l + β·Σw_l·E_l + γ·TV.
    """
    return _terms_graph(model, spec, [], [])


def _drop_zero_terms(graph: onnx.GraphProto, zero: list[str]) -> None:
    """Treat the tensors in `zero` as zero: each Add of one becomes an Identity of the other.

    The exporter feeds every cut tensor into an Add and nothing else (export/gradient.py); an
    Add of two zeros is zero in turn. The cut tensors stop being inputs.
    """
    zero_set = set(zero)
    kept = []
    for node in graph.node:
        hits = [name for name in node.input if name in zero_set]
        if not hits:
            kept.append(node)
            continue
        if node.op_type != "Add":
            raise ValueError(f"cannot cut the gradient graph at {hits[0]}: it feeds a {node.op_type}")
        rest = [name for name in node.input if name not in zero_set]
        if rest:
            kept.append(helper.make_node("Identity", rest, list(node.output), name=node.name))
        else:
            zero_set.update(node.output)
    del graph.node[:]
    graph.node.extend(kept)
    inputs = [i for i in graph.input if i.name not in zero_set]
    del graph.input[:]
    graph.input.extend(inputs)


def gradient_graph(
    model: onnx.ModelProto, spec: LossSpec, extra_outputs: list[str] | tuple[str, ...] = ()
) -> onnx.ModelProto:
    """image, targets, weights -> the loss terms and dL/dimage for the layers in use (and
    `extra_outputs`, tensors of the export such as target_outputs(spec)).

    The export's gradient graph runs backwards from its deepest layer and adds every layer's
    terms on the way. Here it is cut at the deepest layer in use (the gradient from deeper layers
    is taken as zero, so neither their forward nor their backward pass is kept), and the terms of
    the shallower layers not in use are bypassed, so their targets need no values and cost
    nothing. Zero weights would give the same numbers but keep all of that work.
    """
    meta = {prop.key: prop.value for prop in model.metadata_props}
    arch = contract.Arch(meta[contract.META_ARCH])
    layers = [*spec.content_layers, *spec.style_layers]
    cut = [contract.deeper_grad(contract.deepest(arch, layers))] if layers else [contract.NETWORK_GRAD]
    cut += [
        contract.content_grad(layer)
        for layer in meta[contract.META_CONTENT_LAYERS].split(",")
        if layer not in spec.content_layers
    ]
    style_grad, other_grad = (
        (contract.sliced_grad, contract.style_grad)
        if sliced(spec)
        else (contract.style_grad, contract.sliced_grad)
    )
    exported = meta[contract.META_STYLE_LAYERS].split(",")
    cut += [style_grad(layer) for layer in exported if layer not in spec.style_layers]
    if contract.META_STYLE_LOSSES in meta:  # exports before the sliced term have only the Gram's
        cut += [other_grad(layer) for layer in exported]
    sub = _terms_graph(model, spec, cut, [contract.IMAGE_GRAD, *extra_outputs])
    _drop_zero_terms(sub.graph, cut)
    return sub


def training_graph(
    model: onnx.ModelProto, spec: LossSpec, height: int, width: int
) -> tuple[onnx.ModelProto, list[str]]:
    """The loss graph at one fixed size, with every input turned into an initializer.

    onnxruntime-training differentiates with respect to initializers and its pooling-gradient
    kernels need static shapes, so the image becomes a fixed-shape initializer (the trainable
    parameter) and the targets and weights become initializers too (frozen parameters, set once
    per run: on CUDA they stay on the device). Returns the model and the frozen names.
    """
    sub = loss_graph(model, spec)
    shapes = {contract.IMAGE: (1, 3, height, width), **target_shapes(spec, height, width)}
    values = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    values.update(weight_values(spec))
    graph = sub.graph
    frozen = [name for name in values if name != contract.IMAGE]
    del graph.input[:]
    graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    # Shapes inside were inferred for dynamic sizes; let the gradient builder infer them anew.
    del graph.value_info[:]
    return sub, frozen
