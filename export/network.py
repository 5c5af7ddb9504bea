"""The VGG feature stack in torch, with Caffe layer names and the preprocessing inside."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nst_ort.contract import Arch, Pooling, conv_layers, layer_sequence


@dataclass(frozen=True)
class Preprocessing:
    """How the weights expect their input, starting from RGB in [0, 1]."""

    channel_order: str  # "rgb" or "bgr" (Caffe)
    scale: float  # 255 for Caffe weights, 1 for torchvision
    mean: tuple[float, float, float]  # in channel_order, after scaling
    std: tuple[float, float, float]  # in channel_order, after scaling

    def as_dict(self) -> dict:
        return {
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }


CAFFE = Preprocessing("bgr", 255.0, (104.00699, 116.66877, 122.67892), (1.0, 1.0, 1.0))
TORCHVISION = Preprocessing("rgb", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def avg_pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling as crop + reshape + mean.

    Same values as AvgPool2d(2) (odd rows/columns dropped), but written so that its gradient needs
    no AveragePoolGrad kernel: ONNX Runtime's CUDA build has none, and its CPU one crashes with
    dynamic shapes, while ReduceMean differentiates everywhere.
    """
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, :, : h2 * 2, : w2 * 2]
    return x.reshape(n, c, h2, 2, w2, 2).mean(dim=(3, 5))


class VGGFeatures(nn.Module):
    """conv1_1 … up to `last_layer`, input RGB in [0, 1], preprocessing included."""

    def __init__(
        self,
        arch: Arch,
        pooling: Pooling,
        last_layer: str,
        preprocessing: Preprocessing,
        convs: dict[str, tuple[torch.Tensor, torch.Tensor]],
    ):
        super().__init__()
        self.arch = Arch(arch)
        self.pooling = Pooling(pooling)
        sequence = layer_sequence(self.arch)
        self.sequence = sequence[: sequence.index(last_layer) + 1]
        self.preprocessing = preprocessing
        self.convs = nn.ModuleDict()
        for name in (n for n in conv_layers(self.arch) if n in self.sequence):
            weight, bias = convs[name]
            if name == "conv1_1" and preprocessing.channel_order == "bgr":
                # Feeding RGB to BGR weights: permuting conv1_1's input channels is exactly the
                # channel flip (padding zeros are unaffected), and costs nothing in the graph.
                weight = weight.flip(1)
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
            conv.weight.data.copy_(weight)
            conv.bias.data.copy_(bias)
            conv.requires_grad_(False)
            self.convs[name] = conv
        order = [2, 1, 0] if preprocessing.channel_order == "bgr" else [0, 1, 2]
        mean = torch.tensor([preprocessing.mean[i] for i in order]).view(1, 3, 1, 1)
        std = torch.tensor([preprocessing.std[i] for i in order]).view(1, 3, 1, 1)
        # (image * scale - mean) / std, folded into one multiply and one subtract.
        self.register_buffer("scale", preprocessing.scale / std)
        self.register_buffer("offset", mean / std)

    def forward(self, image: torch.Tensor, wanted: set[str]) -> dict[str, torch.Tensor]:
        x = image * self.scale - self.offset
        out: dict[str, torch.Tensor] = {}
        for name in self.sequence:
            if name.startswith("conv"):
                x = self.convs[name](x)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif self.pooling is Pooling.AVG:
                x = avg_pool2(x)
            else:
                x = F.max_pool2d(x, 2, 2)
            if name in wanted:
                out[name] = x
        return out
