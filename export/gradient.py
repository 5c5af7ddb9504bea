"""dL/dimage written as forward operations, so a plain ONNX Runtime InferenceSession can run it.

Every layer's backward pass is itself a forward operator: a convolution's input gradient is a
convolution of the output gradient with the kernel flipped and its in/out channels swapped,
a ReLU's is the output gradient masked where the activation is positive, a pooling layer's
spreads (average) or routes (max) the gradient back over each 2x2 window. No operator needs a
gradient kernel, so any ONNX Runtime build (onnxruntime, onnxruntime-gpu, the training build)
and any execution provider runs the graph, at any image size.

The graph also outputs the tensors where the runtime cuts it (see nst_ort/contract.py): each loss
term's share of the gradient at its layer, and the gradient arriving at each loss layer from the
deeper ones. Treating such a tensor as zero drops that term, or everything deeper, from the
graph (nst_ort/graphs.py: gradient_graph).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from onnx.utils import Extractor

from export.losses import StyleTransferLoss, chroma
from nst_ort import contract
from nst_ort.contract import Pooling

GRADIENT_GRAPH = "1"  # the metadata value (contract.META_GRADIENT_GRAPH) of an export that has one


def conv_input_grad(grad: torch.Tensor, flipped_kernel: torch.Tensor) -> torch.Tensor:
    """dL/dx of a 3x3 'same' convolution: the same convolution with the kernel flipped.

    A Conv rather than a ConvTranspose of the forward kernel (the same numbers): ONNX Runtime's
    CPU Conv runs in its NCHWc layout; with ConvTranspose an evaluation took 10-25% longer.
    """
    return F.conv2d(grad, flipped_kernel, padding=1)


def flip_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """OIHW kernel -> the kernel of its input gradient: flipped in space, in/out swapped."""
    return kernel.flip(2, 3).transpose(0, 1).contiguous()


def flipped_kernel_name(conv: str) -> str:
    """The buffer (and at first the ONNX initializer) holding a conv's flipped kernel."""
    return f"flipped_{conv}"


def derive_flipped_kernels(model: onnx.ModelProto, convs: list[str]) -> None:
    """Replace each flipped kernel initializer by Slice and Transpose nodes on the forward kernel.

    torch exports the flipped kernels as initializers of their own, which doubles the file; as
    nodes on the initializers they read, ONNX Runtime's constant folding turns them back into
    kernels when it loads the graph, before any run.
    """
    graph = model.graph
    kernels = {init.name: init for init in graph.initializer}
    flipped = {flipped_kernel_name(conv): f"features.convs.{conv}.weight" for conv in convs}
    missing = [name for name in (*flipped, *flipped.values()) if name not in kernels]
    if missing:
        raise ValueError(f"the export has no initializer {missing[0]}")
    kept = [init for init in graph.initializer if init.name not in flipped]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # Reverse the two spatial axes: from the last element (-1) past the first (INT64_MIN), step -1.
    slice_args = {
        "flip.starts": [-1, -1],
        "flip.ends": [np.iinfo(np.int64).min] * 2,
        "flip.axes": [2, 3],
        "flip.steps": [-1, -1],
    }
    graph.initializer.extend(numpy_helper.from_array(np.array(v, np.int64), k) for k, v in slice_args.items())
    nodes = []
    for name, kernel in flipped.items():
        nodes.append(
            helper.make_node("Slice", [kernel, *slice_args], [f"{name}.spatial"], name=f"{name}.Slice")
        )
        nodes.append(
            helper.make_node(
                "Transpose", [f"{name}.spatial"], [name], perm=[1, 0, 2, 3], name=f"{name}.Transpose"
            )
        )
    nodes.extend(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def relu_grad(grad: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """Where the ReLU passed its input (output > 0, as autograd decides) the gradient passes.

    A multiply by the mask rather than a Where: ONNX Runtime's CPU Where took twice as long.
    """
    return grad * (activation > 0).to(grad.dtype)


def avg_pool2_grad(grad: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Backward of network.avg_pool2: each output's gradient spread x1/4 over its 2x2 window.

    The row and column an odd-sized input drops get zero, by padding to `before`'s size.
    """
    _, _, h2, w2 = grad.shape
    # Nearest-neighbour x2 copies each value over its window; ONNX Runtime's Resize does it in
    # about a tenth of the time of the equivalent Expand and Reshape.
    spread = F.interpolate(grad * 0.25, scale_factor=2.0, mode="nearest")
    return F.pad(spread, (0, before.shape[3] - w2 * 2, 0, before.shape[2] - h2 * 2))


def max_pool2_grad(grad: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Backward of 2x2 max pooling: each output's gradient goes to its window's arg-max.

    The window's four positions are strided slices; each takes the gradient where it is the
    first maximum in row-major order, as autograd's does (an equality mask alone would hand the
    whole gradient to every tied position, and flat image regions tie), and the four are
    interleaved back. Elementwise operators only: MaxPool's indices and a ScatterElements did
    the same, but OpenVINO's scatter is slower than the whole network: at 512x384 an ov-bf16
    evaluation took 5.0x an average-pooled export's time with it, 0.93x with these slices.
    ort-graph pays a little for them (1.10x against the scatter's 1.04x; 2 cores, quiet;
    docs/quality.md), a trade worth making for the backend `auto` picks on bf16 CPUs.
    The row and column an odd-sized input drops get zero.
    """
    n, c, h2, w2 = grad.shape
    x = before[:, :, : 2 * h2, : 2 * w2]
    corners = (x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])
    top = torch.maximum(torch.maximum(corners[0], corners[1]), torch.maximum(corners[2], corners[3]))
    taken = torch.zeros_like(grad, dtype=torch.bool)
    zero = torch.zeros_like(grad)
    routed = []
    for corner in corners:
        first = (corner == top) & ~taken
        taken = taken | first
        routed.append(torch.where(first, grad, zero))
    upper = torch.stack(routed[:2], dim=-1).reshape(n, c, h2, 2 * w2)
    lower = torch.stack(routed[2:], dim=-1).reshape(n, c, h2, 2 * w2)
    whole = torch.stack([upper, lower], dim=-2).reshape(n, c, 2 * h2, 2 * w2)
    return F.pad(whole, (0, before.shape[3] - 2 * w2, 0, before.shape[2] - 2 * h2))


def content_term_grad(features: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """weight · ∂/∂F of ½ Σ (F − P)²."""
    return (features - target) * weight


def style_term_grad(
    features: torch.Tensor, gram_per_position: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """weight · ∂E/∂F for E = Σ (G − A)² / (4N²) with G = F Fᵀ / M (losses.gram, style_loss).

    ∂E/∂G = (G − A) / (2N²) and G = F Fᵀ / M give ∂E/∂F = (D + Dᵀ) F / (2N²M) with D = G − A:
    the paper's (G − A) F / (N²M²) once G and A are sums again. D is symmetrised rather than
    assumed symmetric because a blended or rounded target Gram need not be exactly so.
    """
    _, n, h, w = features.shape
    f = features.reshape(n, h * w)
    d = gram_per_position - target
    scale = weight / (2.0 * n * n * (h * w))
    return (((d + d.t()) * scale) @ f).reshape(features.shape)


def sliced_term_grad(
    features: torch.Tensor,
    projected: torch.Tensor,
    matched: torch.Tensor,
    directions: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """weight · ∂S/∂F for S = Σ (D F − T)² / M with T held fixed (losses.sliced_loss):
    2 Dᵀ (P − T) / M, back in the features' shape."""
    _, _, h, w = features.shape
    return ((directions.t() @ (projected - matched)) * (2.0 * weight / (h * w))).reshape(features.shape)


def tv_grad(image: torch.Tensor, chroma_weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """∂/∂x of losses.tv_loss. The plain Σ (x[j+1] − x[j])² over rows and columns gives
    g = 2(d[j−1] − d[j]), d = 0 off the edges; the colour part's extra (k − 1) Σ ‖chroma(d)‖² adds
    (k − 1) chroma(g), the projection being linear, symmetric and idempotent."""
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    plain = 2.0 * (F.pad(dx, (1, 0)) - F.pad(dx, (0, 1)) + F.pad(dy, (0, 0, 1, 0)) - F.pad(dy, (0, 0, 0, 1)))
    return plain + (chroma_weight - 1.0) * chroma(plain)


class StyleTransferGradient(StyleTransferLoss):
    """StyleTransferLoss's outputs, then dL/dimage and the tensors the runtime cuts at.

    Inputs are StyleTransferLoss's; output order is `output_names()`.
    """

    def __init__(self, loss: StyleTransferLoss):
        super().__init__(loss.features, loss.content_layers, loss.style_layers)
        order = self.features.sequence
        wanted = set(self.content_layers) | set(self.style_layers)
        self.loss_layers = [layer for layer in order if layer in wanted]
        for name, conv in self.features.convs.items():
            # Flipped once here; in the file they become nodes on the forward kernels.
            self.register_buffer(flipped_kernel_name(name), flip_kernel(conv.weight.detach()))

    def output_names(self) -> list[str]:
        return (
            super().output_names()
            + [contract.IMAGE_GRAD, contract.NETWORK_GRAD]
            + [contract.content_grad(layer) for layer in self.content_layers]
            + [contract.style_grad(layer) for layer in self.style_layers]
            + [contract.sliced_grad(layer) for layer in self.style_layers]
            + [contract.deeper_grad(layer) for layer in self.loss_layers]
        )

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = super().dynamic_axes()
        axes[contract.IMAGE_GRAD] = axes[contract.NETWORK_GRAD] = axes[contract.IMAGE]
        for layer in self.loss_layers:
            sides = {2: f"{layer}_height", 3: f"{layer}_width"}
            axes[contract.deeper_grad(layer)] = sides
            if layer in self.content_layers:
                axes[contract.content_grad(layer)] = sides
            if layer in self.style_layers:
                axes[contract.style_grad(layer)] = axes[contract.sliced_grad(layer)] = sides
        return axes

    def forward(self, image: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.run(image, *args)[0]

    def run(
        self, image: torch.Tensor, *args: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        """The outputs, and every activation of the feature stack they were computed from."""
        sequence = self.features.sequence
        # Every activation: the ReLU outputs are the backward pass's masks, pooling inputs its sizes.
        feats = self.features(image, set(sequence))
        outputs, matches = self.terms_and_matches(image, feats, *args)
        grams = dict(zip(StyleTransferLoss.output_names(self), outputs, strict=True))
        inputs = self.split_inputs(args)
        content_grads = {
            layer: content_term_grad(feats[layer], target, inputs.alpha * weight)
            for layer, target, weight in zip(
                self.content_layers, inputs.content_targets, inputs.content_weights, strict=True
            )
        }
        style_grads = {
            layer: style_term_grad(
                feats[layer], grams[contract.style_gram(layer)], target, inputs.beta * weight
            )
            for layer, target, weight in zip(
                self.style_layers, inputs.style_targets, inputs.style_weights, strict=True
            )
        }
        sliced_grads = {
            layer: sliced_term_grad(feats[layer], *matches[layer], directions, inputs.beta * weight)
            for layer, directions, weight in zip(
                self.style_layers, inputs.directions, inputs.style_weights, strict=True
            )
        }
        deeper: dict[str, torch.Tensor] = {}
        grad = None
        # The sequence ends at the deepest loss layer, so `grad` is set at the first step.
        for i in range(len(sequence) - 1, -1, -1):
            name = sequence[i]
            if name in self.loss_layers:
                grad = deeper[name] = torch.zeros_like(feats[name]) if grad is None else grad
                # Adds only: the runtime drops a term by bypassing its Add (graphs.gradient_graph).
                if name in content_grads:
                    grad = grad + content_grads[name]
                if name in style_grads:
                    grad = grad + style_grads[name] + sliced_grads[name]
            if name.startswith("relu"):
                grad = relu_grad(grad, feats[name])
            elif name.startswith("conv"):
                grad = conv_input_grad(grad, getattr(self, flipped_kernel_name(name)))
            elif self.features.pooling is Pooling.AVG:
                grad = avg_pool2_grad(grad, feats[sequence[i - 1]])
            else:
                grad = max_pool2_grad(grad, feats[sequence[i - 1]])
        # x = image · scale − offset: the preprocessing's backward is a per-channel scale.
        network = grad * self.features.scale
        image_grad = network + inputs.gamma * tv_grad(image, inputs.tv_chroma)
        outputs = (
            *outputs,
            image_grad,
            network,
            *content_grads.values(),
            *style_grads.values(),
            *sliced_grads.values(),
            *(deeper[layer] for layer in self.loss_layers),
        )
        return outputs, feats

    def reference(
        self, image: torch.Tensor, *args: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """Outputs by name, the activations, and torch autograd's dL/dimage: one forward pass.

        Autograd differentiates the loss output through the very activations that the explicit
        backward pass used, so a ReLU sitting on its kink decides the same way in both.
        """
        image = image.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            outputs, feats = self.run(image, *args)
            (grad,) = torch.autograd.grad(outputs[0], image)
        by_name = {name: t.detach() for name, t in zip(self.output_names(), outputs, strict=True)}
        return by_name, {layer: t.detach() for layer, t in feats.items()}, grad


def with_activation_inputs(
    model: onnx.ModelProto, module: StyleTransferGradient
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """The exported graph's gradient outputs, with every ReLU output made an input.

    Fed torch's activations, ONNX Runtime then computes the backward pass at exactly torch's
    ReLU decisions. Fed its own, a pre-activation within rounding of zero may switch the other
    way in one runtime than in the other, which moves the gradient by far more than rounding,
    though each is right for its own forward pass (the forward outputs are compared separately).
    Returns the graph and the input name of each ReLU layer's output.
    """
    relus = [node.output[0] for node in model.graph.node if node.op_type == "Relu"]
    layers = [layer for layer in module.features.sequence if layer.startswith("relu")]
    if len(relus) != len(layers):
        raise ValueError(f"expected {len(layers)} Relu nodes in the export, found {len(relus)}")
    inputs = module.input_names() + relus
    outputs = module.output_names()[len(StyleTransferLoss.output_names(module)) :]
    # Shape inference gives the cut tensors the value_info Extractor needs for new inputs.
    sub = Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(inputs, outputs)
    return sub, dict(zip(layers, relus, strict=True))
