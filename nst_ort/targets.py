"""Content features P and style Grams A, from a plain InferenceSession on the target graph."""

from __future__ import annotations

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
