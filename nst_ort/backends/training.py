"""The gradient of the loss with respect to the image, from onnxruntime-training.

`TrainingBackend` wraps one set of per-size artifacts: the image is the trainable parameter,
targets and weights are frozen parameters set once, so a step moves the image in and its
gradient out. (The artifacts' optimizer model serves bundles; the loop runs Adam on the host for
every backend, so that its state can follow the image from one pass's size to the next.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.backends import Prepared
from nst_ort.backends.artifacts import Artifacts, ensure
from nst_ort.backends.ort import require_training, session_options, training_module
from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo


class TrainingBackend:
    def __init__(self, artifacts: Artifacts, frozen: dict[str, np.ndarray], device: str, threads: int = 0):
        api = training_module("api")
        missing = set(artifacts.frozen) - set(frozen)
        if missing:
            raise ValueError(f"no values for frozen parameters {sorted(missing)}")
        self._state = api.CheckpointState.load_checkpoint(str(artifacts.checkpoint))
        self._module = api.Module(
            str(artifacts.training_model),
            self._state,
            str(artifacts.eval_model),
            device=device,
            session_options=session_options(threads),
        )
        # Parameters get their buffers when the Module is created: setting one before segfaults.
        self._params = self._state.parameters
        for name in artifacts.frozen:
            self._params[name].data = np.array(frozen[name], np.float32, order="C")
        self._module.train()
        self.shape = tuple(self._params[contract.IMAGE].data.shape)

    def _terms(self, outputs) -> dict[str, float]:
        # With no user inputs, Module returns OrtValues rather than numpy arrays.
        values = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        values = [v.numpy() if hasattr(v, "numpy") else v for v in values]
        return {name: float(np.asarray(v)) for name, v in zip(contract.TERMS, values, strict=True)}

    def set_image(self, image: np.ndarray) -> None:
        self._params[contract.IMAGE].data = np.ascontiguousarray(image, np.float32).reshape(self.shape)

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Loss terms and dL/dimage at `image` (NCHW, float32). The gradient is a fresh copy."""
        self.set_image(image)
        self._module.lazy_reset_grad()  # gradients accumulate across steps otherwise
        terms = self._terms(self._module())
        return terms, np.array(self._params[contract.IMAGE].grad, np.float32)


class TrainingGradient:
    """The ort-training backend of one engine: per-size artifacts from the on-disk cache."""

    def __init__(self, model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path):
        self.model, self.info, self.device, self.threads = model, info, device, threads
        self.cache_root = cache_root

    def prepare(self, spec: LossSpec, frozen: dict[str, np.ndarray], height: int, width: int) -> Prepared:
        if contract.StyleLoss(spec.style_loss) is contract.StyleLoss.SLICED:
            # onnxruntime-training differentiates the loss graph itself, through the histogram
            # lookups that the sliced term holds fixed; the export's gradient graph does not.
            raise NstError("`style_loss` sliced needs `backend` ort-graph or ov-bf16, not ort-training")
        entry = ensure(self.model, self.info.sha256, spec, height, width, self.cache_root)
        objective = TrainingBackend(entry, frozen, self.device, self.threads)
        return Prepared(objective, entry.built, entry.seconds)


def create(model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path):
    require_training()
    return TrainingGradient(model, info, device, threads, cache_root)
