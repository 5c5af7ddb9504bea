"""The paper's loss terms in torch, arranged as the exported graph's inputs and outputs."""

from __future__ import annotations

import torch
from torch import nn

from export.network import VGGFeatures
from nst_ort import contract


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix per position, G/M with G = F Fᵀ over the M = H·W positions (batch of one).

    Departure from the paper: dividing by M here makes the style term
    Σ(G/M − A/M)² / (4N²) equal the paper's Σ(G − A)² / (4N²M²) when the style and output
    images have the same size, and keeps it meaningful when they do not (neural-style's
    -style_scale): both Grams are then averages over positions rather than sums.
    """
    _, c, h, w = features.shape
    f = features.reshape(c, h * w)
    return (f @ f.t()) / (h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = ½ Σ (F − P)²."""
    return 0.5 * ((features - target) ** 2).sum()


def style_loss(gram_per_position: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E_l = Σ (G − A)² / (4 N² M²), with G and A given per position (see `gram`)."""
    n = gram_per_position.shape[0]
    return ((gram_per_position - target) ** 2).sum() / (4.0 * n * n)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: squared differences of neighbouring pixels, on the [0, 1] RGB image."""
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    return (dx**2).sum() + (dy**2).sum()


class StyleTransferLoss(nn.Module):
    """image, targets and weights in; total loss, its terms, features and Grams out.

    Argument and output order is `input_names()` / `output_names()`.
    """

    def __init__(self, features: VGGFeatures, content_layers: list[str], style_layers: list[str]):
        super().__init__()
        self.features = features
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)

    def input_names(self) -> list[str]:
        return (
            [contract.IMAGE]
            + [contract.content_target(layer) for layer in self.content_layers]
            + [contract.style_target(layer) for layer in self.style_layers]
            + [contract.ALPHA, contract.BETA, contract.GAMMA]
            + [contract.content_weight(layer) for layer in self.content_layers]
            + [contract.style_weight(layer) for layer in self.style_layers]
        )

    def output_names(self) -> list[str]:
        return (
            list(contract.TERMS)
            + [contract.content_loss(layer) for layer in self.content_layers]
            + [contract.style_loss(layer) for layer in self.style_layers]
            + [contract.content_features(layer) for layer in self.content_layers]
            + [contract.style_gram(layer) for layer in self.style_layers]
        )

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The image's height and width, and the feature maps' that follow from them."""
        axes = {contract.IMAGE: {2: "height", 3: "width"}}
        for layer in self.content_layers:
            axes[contract.content_target(layer)] = {2: f"{layer}_height", 3: f"{layer}_width"}
            axes[contract.content_features(layer)] = {2: f"{layer}_height", 3: f"{layer}_width"}
        return axes

    def split_inputs(self, args: tuple[torch.Tensor, ...]):
        """The inputs after the image: content targets, style targets, α, β, γ, w_l, w_l."""
        nc, ns = len(self.content_layers), len(self.style_layers)
        content_targets, args = args[:nc], args[nc:]
        style_targets, args = args[:ns], args[ns:]
        alpha, beta, gamma, args = args[0], args[1], args[2], args[3:]
        content_weights, style_weights = args[:nc], args[nc:]
        return content_targets, style_targets, alpha, beta, gamma, content_weights, style_weights

    def forward(self, image: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.features(image, set(self.content_layers) | set(self.style_layers))
        return self.terms(image, feats, *args)

    def terms(
        self, image: torch.Tensor, feats: dict[str, torch.Tensor], *args: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The outputs, in `output_names()` order, from the features of the layers in use."""
        content_targets, style_targets, alpha, beta, gamma, content_weights, style_weights = (
            self.split_inputs(args)
        )
        contents = [
            content_loss(feats[layer], target)
            for layer, target in zip(self.content_layers, content_targets, strict=True)
        ]
        grams = [gram(feats[layer]) for layer in self.style_layers]
        styles = [style_loss(g, a) for g, a in zip(grams, style_targets, strict=True)]
        total_content = sum((w * e for w, e in zip(content_weights, contents, strict=True)), torch.zeros(()))
        total_style = sum((w * e for w, e in zip(style_weights, styles, strict=True)), torch.zeros(()))
        tv = tv_loss(image)
        total = alpha * total_content + beta * total_style + gamma * tv
        return (
            total,
            total_content,
            total_style,
            tv,
            *contents,
            *styles,
            *(feats[layer] for layer in self.content_layers),
            *grams,
        )
