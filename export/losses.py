"""The paper's loss terms in torch, arranged as the exported graph's inputs and outputs."""

from __future__ import annotations

from typing import NamedTuple

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


def projections(features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """The features (batch of one, C channels) at every position projected onto each direction
    (a row of `directions`, K x C): K x M for the M = H·W positions."""
    return directions @ features.reshape(features.shape[1], -1)


def quantiles(projected: torch.Tensor, count: int = contract.QUANTILES) -> torch.Tensor:
    """Each row's distribution as `count` values: the sorted values at the mid-quantiles
    (q + ½)/count, so that images of any size give targets of one shape, and several paintings
    blend by averaging them (the 1-D Wasserstein barycentre)."""
    m = projected.shape[1]
    ordered = torch.sort(projected, dim=1).values
    index = ((torch.arange(count, dtype=torch.float32) + 0.5) * m / count).floor().long()
    return ordered.index_select(1, index.clamp(max=m - 1))


def histogram_match(
    projected: torch.Tensor, target: torch.Tensor, stride: int = 1, bins: int = contract.BINS
) -> torch.Tensor:
    """For each projected value, the value at the same quantile of the target's distribution.

    Sliced Wasserstein (Heitz et al. 2021) pairs the sorted values; a sort of every projection at
    every step costs more than the network (ONNX Runtime's TopK took 5.5 s for relu1_1 at 512 px).
    The pairing is read from a histogram of each row instead, as Risser et al. (2017) match
    histograms: each bin edge's quantile (the values below it) gives the target's value there,
    and a value between two edges gets theirs linearly. Each value counts in the two bins nearest
    it, split linearly, so that the result is continuous in the values: a hard histogram jumps a
    whole rank when a value crosses a bin edge, which at a deep layer of a small image (20
    positions) is a twentieth of the distribution. The histogram counts every `stride`-th
    position (ONNX Runtime's scatter, ~35 ns a value, is the slowest operator here; the shallow
    layers have positions to spare: relu1_1 counts an eighth, 2048 of them at 128 px). The
    target's quantile function is `target`'s values (at the mid-quantiles), linearly between
    them. Per value, this costs two lookups; the rest is per bin.
    """
    low = projected.amin(1, keepdim=True)
    span = (projected.amax(1, keepdim=True) - low).clamp_min(1e-20)
    sample = projected[:, ::stride]
    z = (sample - low) * (bins / span) - 0.5  # bin j's centre is at j + 0.5
    near = z.floor().clamp(0, bins - 1)
    share = (z - near).clamp(0, 1)
    near = near.int()  # int32 indices: half the bytes of int64, and ONNX's gathers take them
    counts = (
        torch.zeros(projected.shape[0], bins, dtype=projected.dtype)
        .scatter_add(1, near, 1 - share)
        .scatter_add(1, (near + 1).clamp(max=bins - 1), share)
    )
    # Each edge's quantile, in units of the target's spacing (its values sit at the mid-quantiles),
    # and the target's value there.
    count = target.shape[1]
    below = torch.nn.functional.pad(counts.cumsum(1), (1, 0))
    position = (below * (count / sample.shape[1]) - 0.5).clamp(0, count - 1)
    first = position.floor()
    t = position - first
    first = first.int()
    slope = torch.nn.functional.pad(target[:, 1:] - target[:, :-1], (0, 1))  # zero past the last
    at_edges = target.gather(1, first) + t * slope.gather(1, first)
    rise = at_edges[:, 1:] - at_edges[:, :-1]
    z = (projected - low) * (bins / span)
    index = z.floor().clamp(max=bins - 1)
    within = z - index
    index = index.int()
    return at_edges[:, :-1].gather(1, index) + within * rise.gather(1, index)


def sliced_loss(projected: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
    """S_l = Σ (P − T(P))² / M over the K directions and M positions, T(P) held fixed (its
    gradient is that of a target): per position, like the Grams, so that sizes compare."""
    return ((projected - matched) ** 2).sum() / projected.shape[1]


def chroma(difference: torch.Tensor) -> torch.Tensor:
    """The colour part of an RGB difference: what is left after its grey part, the mean of its
    three channels (the projection onto the plane orthogonal to grey)."""
    return difference - difference.mean(dim=1, keepdim=True)


def tv_loss(image: torch.Tensor, chroma_weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Total variation on the [0, 1] RGB image: squared differences of neighbouring pixels, their
    colour part counted `chroma_weight` times (Σ ‖grey part‖² + k Σ ‖colour part‖²; k = 1 is the
    plain Σ ‖d‖²).

    Where this departs from the paper's (and neural-style's) plain TV: the network barely sees
    colour changes from one pixel to the next, so the style terms leave a fine pink, green and
    blue speckle that the plain TV, weighted to keep the strokes, does not remove
    (docs/quality.md); penalising the colour part alone removes it and keeps the brightness
    detail that draws the strokes."""
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    plain = (dx**2).sum() + (dy**2).sum()
    return plain + (chroma_weight - 1.0) * ((chroma(dx) ** 2).sum() + (chroma(dy) ** 2).sum())


class Inputs(NamedTuple):
    """The graph's inputs after the image, by kind (StyleTransferLoss.split_inputs)."""

    content_targets: tuple[torch.Tensor, ...]
    style_targets: tuple[torch.Tensor, ...]
    directions: tuple[torch.Tensor, ...]
    quantile_targets: tuple[torch.Tensor, ...]
    alpha: torch.Tensor
    beta: torch.Tensor
    gamma: torch.Tensor
    tv_chroma: torch.Tensor
    content_weights: tuple[torch.Tensor, ...]
    style_weights: tuple[torch.Tensor, ...]


class StyleTransferLoss(nn.Module):
    """image, targets and weights in; total loss, its terms, features and Grams out.

    Argument and output order is `input_names()` / `output_names()`.
    """

    def __init__(
        self, features: VGGFeatures, content_layers: list[str], style_layers: list[str], sliced: bool = True
    ):
        super().__init__()
        self.features = features
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)
        # Without the sliced terms (a torch reference of the Gram terms alone, as a run that
        # uses them computes: benchmarks/backends.py) their outputs are zeros. Exports have them.
        self.sliced = sliced

    def input_names(self) -> list[str]:
        return (
            [contract.IMAGE]
            + [contract.content_target(layer) for layer in self.content_layers]
            + [contract.style_target(layer) for layer in self.style_layers]
            + [contract.style_directions(layer) for layer in self.style_layers]
            + [contract.style_quantile_target(layer) for layer in self.style_layers]
            + [contract.ALPHA, contract.BETA, contract.GAMMA, contract.TV_CHROMA]
            + [contract.content_weight(layer) for layer in self.content_layers]
            + [contract.style_weight(layer) for layer in self.style_layers]
        )

    def output_names(self) -> list[str]:
        return (
            list(contract.TERMS)
            + [contract.content_loss(layer) for layer in self.content_layers]
            + [contract.style_loss(layer) for layer in self.style_layers]
            + [contract.sliced_loss(layer) for layer in self.style_layers]
            + [contract.content_features(layer) for layer in self.content_layers]
            + [contract.style_gram(layer) for layer in self.style_layers]
            + [contract.style_quantiles(layer) for layer in self.style_layers]
        )

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The image's height and width, and the feature maps' that follow from them."""
        axes = {contract.IMAGE: {2: "height", 3: "width"}}
        for layer in self.content_layers:
            axes[contract.content_target(layer)] = {2: f"{layer}_height", 3: f"{layer}_width"}
            axes[contract.content_features(layer)] = {2: f"{layer}_height", 3: f"{layer}_width"}
        return axes

    def split_inputs(self, args: tuple[torch.Tensor, ...]) -> Inputs:
        """The inputs after the image, in `input_names()` order."""
        nc, ns = len(self.content_layers), len(self.style_layers)
        content_targets, args = args[:nc], args[nc:]
        style_targets, args = args[:ns], args[ns:]
        directions, args = args[:ns], args[ns:]
        quantile_targets, args = args[:ns], args[ns:]
        alpha, beta, gamma, tv_chroma, args = args[0], args[1], args[2], args[3], args[4:]
        content_weights, style_weights = args[:nc], args[nc:]
        return Inputs(
            content_targets,
            style_targets,
            directions,
            quantile_targets,
            alpha,
            beta,
            gamma,
            tv_chroma,
            content_weights,
            style_weights,
        )

    def forward(self, image: torch.Tensor, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.features(image, set(self.content_layers) | set(self.style_layers))
        return self.terms(image, feats, *args)

    def terms(
        self, image: torch.Tensor, feats: dict[str, torch.Tensor], *args: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The outputs, in `output_names()` order, from the features of the layers in use."""
        return self.terms_and_matches(image, feats, *args)[0]

    def terms_and_matches(
        self, image: torch.Tensor, feats: dict[str, torch.Tensor], *args: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, ...], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """`terms`, and per style layer the projections and their matched values (the sliced
        term's gradient needs both)."""
        inputs = self.split_inputs(args)
        contents = [
            content_loss(feats[layer], target)
            for layer, target in zip(self.content_layers, inputs.content_targets, strict=True)
        ]
        grams = [gram(feats[layer]) for layer in self.style_layers]
        styles = [style_loss(g, a) for g, a in zip(grams, inputs.style_targets, strict=True)]
        if self.sliced:
            projected = [
                projections(feats[layer], d)
                for layer, d in zip(self.style_layers, inputs.directions, strict=True)
            ]
            # The matched values are the term's target: no gradient flows through them
            # (sliced_loss). The histograms count an eighth of relu1's positions, a quarter of
            # relu2's, half of relu3's.
            matched = [
                histogram_match(p.detach(), t, max(1, 8 // contract.layer_downsampling(layer)))
                for layer, p, t in zip(self.style_layers, projected, inputs.quantile_targets, strict=True)
            ]
            sliced = [sliced_loss(p, t) for p, t in zip(projected, matched, strict=True)]
            quantile_outputs = [quantiles(p.detach()) for p in projected]
        else:
            sliced = [torch.zeros(()) for _ in self.style_layers]
            quantile_outputs = [torch.zeros(d.shape[0], contract.QUANTILES) for d in inputs.directions]
        total_content = sum(
            (w * e for w, e in zip(inputs.content_weights, contents, strict=True)), torch.zeros(())
        )
        # The export's own total counts both kinds of style term; a run takes one (nst_ort/graphs.py).
        total_style = sum(
            (w * (e + s) for w, e, s in zip(inputs.style_weights, styles, sliced, strict=True)),
            torch.zeros(()),
        )
        tv = tv_loss(image, inputs.tv_chroma)
        total = inputs.alpha * total_content + inputs.beta * total_style + inputs.gamma * tv
        outputs = (
            total,
            total_content,
            total_style,
            tv,
            *contents,
            *styles,
            *sliced,
            *(feats[layer] for layer in self.content_layers),
            *grams,
            *quantile_outputs,
        )
        if not self.sliced:
            return outputs, {}
        return outputs, dict(zip(self.style_layers, zip(projected, matched, strict=True), strict=True))
