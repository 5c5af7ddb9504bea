"""Content features P and style Grams A, from a plain InferenceSession on the target graph, and
the loss weights that make each term relative to its target."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
from scipy import ndimage

from nst_ort import contract
from nst_ort.backends.ort import providers, require_ort, session_options
from nst_ort.config import LossSpec
from nst_ort.graphs import direction_inputs, sliced, style_target, targets_graph
from nst_ort.imageio import fit_longest, resize, to_nchw


class TargetComputer:
    """Runs image -> features/Grams (or quantiles) for the layers of one LossSpec.

    Content and style targets come from two graphs: the sliced term's quantiles need the pass's
    directions, and a content image needs neither them nor the sort behind the quantiles.
    """

    def __init__(self, model: onnx.ModelProto, spec: LossSpec, device: str, threads: int = 0):
        ort = require_ort()
        self.spec = spec
        self._sessions = []
        for part in (replace(spec, style_layers={}), replace(spec, content_layers={})):
            if not (part.content_layers or part.style_layers):
                continue
            graph = targets_graph(model, part)
            session = ort.InferenceSession(
                graph.SerializeToString(), session_options(threads), providers=providers(device)
            )
            self._sessions.append((session, [o.name for o in graph.graph.output], direction_inputs(part)))

    def features(
        self, image: np.ndarray, directions: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """The target graphs' outputs for `image`; the sliced term's quantiles only given the
        `directions` (directions(spec, size))."""
        result: dict[str, np.ndarray] = {}
        for session, outputs, needs in self._sessions:
            if needs and directions is None:
                continue
            feeds = {contract.IMAGE: to_nchw(image), **{name: directions[name] for name in needs}}
            result.update(zip(outputs, session.run(outputs, feeds), strict=True))
        return result

    def content_targets(self, content: np.ndarray) -> dict[str, np.ndarray]:
        """P for each content layer, from the content image already at the output size."""
        feats = self.features(content)
        return {
            contract.content_target(layer): feats[contract.content_features(layer)]
            for layer in self.spec.content_layers
        }

    def style_targets(
        self,
        styles: list[np.ndarray],
        blend: list[float],
        output_size: tuple[int, int],
        style_scale: float,
        given: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """A for each style layer: the blend of the style images' Grams.

        Each style image is resized so its longest side is `style_scale` times the output's
        (neural-style's -style_scale). Grams are per position (see the exporter), so styles of
        any size blend and compare with the output's. The sliced term's directions are those of
        a pass at `output_size` unless `given` (a part of a larger style image: its pass's).
        """
        size = style_side(output_size, style_scale)
        total = float(sum(blend))
        result: dict[str, np.ndarray] = {}
        if sliced(self.spec):
            result.update(directions(self.spec, output_size) if given is None else given)
        for style, weight in zip(styles, blend, strict=True):
            h, w = fit_longest(*style.shape[:2], size)
            feats = self.features(resize(style, h, w), result)
            for layer in self.spec.style_layers:
                # Averaged quantiles are the Wasserstein barycentre of the styles' distributions
                # along each direction, as averaged Grams blend their second moments.
                key, output = style_target(self.spec, layer)
                value = feats[output] * np.float32(weight / total)
                result[key] = result[key] + value if key in result else value
        return result


def directions(spec: LossSpec, output_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """For the sliced term, C orthonormal directions per style layer (rows), random but the same
    for a pass of one size, so that a run, its resume and its tiles agree.

    Heitz et al. draw new directions at every step; here they change with each pass (the style's
    quantiles along them are a pass's targets, computed once), and C of them, orthonormal, see
    every channel.
    """
    rng = np.random.default_rng([*output_size, len(spec.style_layers)])
    result = {}
    for layer in spec.style_layers:
        c = contract.layer_channels(layer)
        q, r = np.linalg.qr(rng.standard_normal((c, c)))
        # The signs that make the draw uniform over rotations (Mezzadri 2007).
        result[contract.style_directions(layer)] = np.ascontiguousarray(
            (q * np.sign(np.diag(r))).T, np.float32
        )
    return result


def style_term_size(spec: LossSpec, layer: str) -> float:
    """What a style term's target's Σ² is divided by to be the size of its term: 4N² for the
    Gram's Σ(G−A)²/(4N²); Q for the sliced term's Σ(P−T)²/M, whose target has Q quantiles per
    direction (the style's mean squared projection, summed over directions)."""
    return float(contract.QUANTILES if sliced(spec) else 4 * contract.layer_channels(layer) ** 2)


def style_side(output_size: tuple[int, int], style_scale: float) -> int:
    """The longest side a style image is resized to for an output of `output_size`."""
    return max(16, round(max(output_size) * style_scale))


def style_for_run(style: np.ndarray, size: int, style_scale: float, blur: float) -> np.ndarray:
    """A style image as every pass of a run sees it: blurred by a Gaussian of σ = `blur` px at
    the longest side the last pass (the output's `size`) uses, and no larger than that side.

    The smaller passes resize this image further, so their blur shrinks with them: it removes
    the painting's finest scale at the output size (grain, crayon, JPEG noise, which the Grams
    would copy into the picture as a crackle), not the strokes a small pass lays out. A style
    image smaller than that side keeps its size (the passes enlarge it), its σ scaled down with it."""
    if blur <= 0:
        return style
    side, longest = style_side((size,), style_scale), max(style.shape[:2])
    if longest > side:
        style, sigma = resize(style, *fit_longest(*style.shape[:2], side)), blur
    else:
        sigma = blur * longest / side
    return ndimage.gaussian_filter(style, sigma=(sigma, sigma, 0), mode="reflect").astype(np.float32)


def normalized_loss(spec: LossSpec, values: dict[str, np.ndarray], height: int, width: int) -> LossSpec:
    """`spec` with each term divided by the size of its target, for one pass at height x width.

    The paper's terms are sums whose size depends on the network's activations: with the HED
    VGG-16 (Caffe weights, 0–255 input, activations shrinking with depth) relu1_1's and relu2_1's
    style terms outweigh relu5_1's by about 10⁵, so the deep layers, which carry the large
    strokes, have no say, and the style gradient lives at the finest scales. The paper balanced
    its layers by rescaling the network so that each filter's mean activation is one; HED's
    near-dead filters (half of relu2_2's, a third of relu5_1's) make that blow up. Dividing each
    term by its target's own size instead makes every term a relative error:

        content  ½Σ(F−P)² / ½ΣP²        style  Σ(G−A)²/(4N²) / (ΣA²/(4N²))        TV  per pixel
        sliced style  Σ(P−T)²/M / (ΣT²/Q)

    so w_l weighs layers as the user means it on any network, and α, β, γ stay meaningful
    across sizes. A target that is all zeros keeps its term as it is.
    """

    def scale(weight: float, target: np.ndarray, size_of_term: float) -> float:
        total = float(np.sum(np.square(target, dtype=np.float64)))
        return weight * size_of_term / total if total > 0 else weight

    content = {
        layer: scale(w, values[contract.content_target(layer)], 2.0)
        for layer, w in spec.content_layers.items()
    }
    style = {
        layer: scale(w, values[style_target(spec, layer)[0]], style_term_size(spec, layer))
        for layer, w in spec.style_layers.items()
    }
    return replace(
        spec, content_layers=content, style_layers=style, tv_weight=spec.tv_weight / (height * width)
    )
