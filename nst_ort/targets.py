"""Content features P and style Grams A, from a plain InferenceSession on the target graph, and
the loss weights that make each term relative to its target."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.backends.ort import providers, require_ort, session_options
from nst_ort.config import LossSpec
from nst_ort.graphs import targets_graph
from nst_ort.imageio import fit_longest, resize, to_nchw


class TargetComputer:
    """Runs image -> features/Grams for the layers of one LossSpec."""

    def __init__(self, model: onnx.ModelProto, spec: LossSpec, device: str, threads: int = 0):
        ort = require_ort()
        self.spec = spec
        graph = targets_graph(model, spec)
        self._outputs = [o.name for o in graph.graph.output]
        self._session = ort.InferenceSession(
            graph.SerializeToString(), session_options(threads), providers=providers(device)
        )

    def features(self, image: np.ndarray) -> dict[str, np.ndarray]:
        values = self._session.run(self._outputs, {contract.IMAGE: to_nchw(image)})
        return dict(zip(self._outputs, values, strict=True))

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
    ) -> dict[str, np.ndarray]:
        """A for each style layer: the blend of the style images' Grams.

        Each style image is resized so its longest side is `style_scale` times the output's
        (neural-style's -style_scale). Grams are per position (see the exporter), so styles of
        any size blend and compare with the output's.
        """
        size = max(16, round(max(output_size) * style_scale))
        total = float(sum(blend))
        result: dict[str, np.ndarray] = {}
        for style, weight in zip(styles, blend, strict=True):
            h, w = fit_longest(*style.shape[:2], size)
            feats = self.features(resize(style, h, w))
            for layer in self.spec.style_layers:
                key = contract.style_target(layer)
                gram = feats[contract.style_gram(layer)] * np.float32(weight / total)
                result[key] = result[key] + gram if key in result else gram
        return result


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
    style = {}
    for layer, w in spec.style_layers.items():
        gram = values[contract.style_target(layer)]
        style[layer] = scale(w, gram, 4.0 * gram.shape[0] ** 2)
    return replace(
        spec, content_layers=content, style_layers=style, tv_weight=spec.tv_weight / (height * width)
    )
