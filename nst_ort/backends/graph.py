"""The gradient of the loss with respect to the image, from the export's gradient graph.

The gradient graph is made of forward operators only (export/gradient.py), so a plain
`InferenceSession` of any ONNX Runtime build runs it: no training build, no per-size artifacts.
One `GradientSession` per layer set serves every image size; a `GraphBackend` per pass holds that
pass's targets. Inputs and outputs go through an IOBinding: targets and weights are bound once,
on the session's device, so a step moves the image in and the terms and gradient out.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.backends import Prepared
from nst_ort.backends.ort import providers, require_ort, session_options
from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.graphs import gradient_graph
from nst_ort.model import ModelInfo


class GradientSession:
    """One InferenceSession on the gradient graph of one layer set, for any image size."""

    def __init__(self, model: onnx.ModelProto, spec: LossSpec, device: str, threads: int = 0):
        ort = require_ort()
        graph = gradient_graph(model, spec)
        self.device = device
        self.inputs = [i.name for i in graph.graph.input]
        self.session = ort.InferenceSession(
            graph.SerializeToString(), session_options(threads), providers=providers(device)
        )


class GraphBackend:
    """`value_and_grad` for one pass at one image size."""

    def __init__(self, session: GradientSession, frozen: dict[str, np.ndarray], shape: tuple[int, ...]):
        ort = require_ort()
        missing = set(session.inputs) - set(frozen) - {contract.IMAGE}
        if missing:
            raise ValueError(f"no values for graph inputs {sorted(missing)}")
        self.shape = tuple(shape)
        self._session = session.session
        self._binding = self._session.io_binding()
        # Kept referenced: on CPU an OrtValue made from an array uses the array's memory.
        self._values = {
            # np.array, not np.ascontiguousarray: that makes the scalar weights 1-D.
            name: ort.OrtValue.ortvalue_from_numpy(np.array(frozen[name], np.float32), session.device, 0)
            for name in session.inputs
            if name != contract.IMAGE
        }
        for name, value in self._values.items():
            self._binding.bind_ortvalue_input(name, value)
        for name in (*contract.TERMS, contract.IMAGE_GRAD):
            self._binding.bind_output(name, session.device)

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Loss terms and dL/dimage at `image` (NCHW, float32). The gradient is a fresh array."""
        image = np.ascontiguousarray(image, np.float32).reshape(self.shape)
        self._binding.bind_cpu_input(contract.IMAGE, image)  # copied to the device, if any
        self._session.run_with_iobinding(self._binding)
        *terms, grad = self._binding.copy_outputs_to_cpu()
        # .item(): a scalar, or a 1-element vector where a backend's graph has no 0-D tensors (openvino.py)
        return {name: value.item() for name, value in zip(contract.TERMS, terms, strict=True)}, grad


class GraphGradient:
    """The ort-graph backend of one engine: one GradientSession per layer set, kept."""

    def __init__(self, model: onnx.ModelProto, device: str, threads: int):
        self.model, self.device, self.threads = model, device, threads
        self._sessions: dict[str, GradientSession] = {}

    def prepare(self, spec: LossSpec, frozen: dict[str, np.ndarray], height: int, width: int) -> Prepared:
        # One session per layer set serves every size: nothing is built per size.
        start = time.perf_counter()
        key = spec.layer_key()
        built = key not in self._sessions
        if built:
            self._sessions[key] = GradientSession(self.model, spec, self.device, self.threads)
        objective = GraphBackend(self._sessions[key], frozen, (1, 3, height, width))
        return Prepared(objective, built, time.perf_counter() - start)


def create(model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path):
    require_ort()
    if not info.has_gradient_graph:
        raise NstError(
            f"{info.path.name} has no gradient graph; export it again with this nst-ort "
            "or use `backend` ort-training"
        )
    return GraphGradient(model, device, threads)
