"""The temporal term of Ruder et al. (2016): λ·Σ c·(x − w)² / D, added to a backend's objective.

x is the image being optimised, w the previous stylised frame warped to this one, c the weights
of flow.consistency and D = 3·height·width, the number of values: per value, as the project's
normalised terms are per target size (targets.normalized_loss), so λ means the same at any size.
Its value and gradient, 2λ·c·(x − w)/D, are computed here on the host; the gradient backend and
the export are untouched.
"""

from __future__ import annotations

import numpy as np

from nst_ort import contract
from nst_ort.loop import Objective

TEMPORAL = "loss.temporal"  # the term's name in the step records, beside contract.TERMS


class TemporalObjective:
    """`inner` (a backend's objective, loop.Objective) plus the temporal term against `target`."""

    def __init__(self, inner: Objective, target: np.ndarray, weights: np.ndarray, weight: float):
        self.inner = inner
        self.shape = tuple(inner.shape)
        self.target = np.asarray(target, np.float32).reshape(self.shape)
        # (height, width) -> broadcast over the batch and channel axes of NCHW
        self.weights = np.asarray(weights, np.float32).reshape(1, 1, *self.shape[-2:])
        self.weight = float(weight)
        self.scale = self.weight / (self.target.size // self.shape[0])
        precise = getattr(inner, "precise", None)
        if precise is not None:  # run_lbfgs finishes a bf16 objective on its float32 twin
            self.precise = TemporalObjective(precise, self.target, weights, weight)

    def temporal(self, image: np.ndarray) -> tuple[float, np.ndarray]:
        """The term's value and its gradient with respect to `image` (NCHW)."""
        weighted = self.weights * (np.asarray(image, np.float32).reshape(self.shape) - self.target)
        difference = np.asarray(image, np.float64).reshape(self.shape) - self.target
        value = self.scale * float(np.sum(self.weights * difference * difference))
        return value, (np.float32(2 * self.scale) * weighted).astype(np.float32)

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        terms, grad = self.inner.value_and_grad(image)
        value, gradient = self.temporal(image)
        terms = {**terms, TEMPORAL: value, contract.LOSS: terms[contract.LOSS] + value}
        return terms, np.asarray(grad, np.float32).reshape(self.shape) + gradient
