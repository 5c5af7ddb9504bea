"""Gradient backends: where a pass gets the loss terms and dL/dimage.

A backend is one module in this package and one line in BACKENDS. The module has a function

    create(model, info, device, threads, cache_root) -> Gradient

which refuses, with an NstError, what it cannot run (a model without the graph it needs, an
ONNX Runtime without the API it needs); the engine calls `Gradient.prepare` once per pass for
the objective the loop drives (nst_ort.loop: value_and_grad, for L-BFGS and Adam alike).
Modules are imported when a backend is first created, so one backend's runtime need not be
installed to use another.

- ort-graph (graph.py): the export's gradient graph in a plain InferenceSession, any size.
- ort-training (training.py): onnxruntime-training's on-device API, artifacts per size (artifacts.py).
- openvino-bf16 (openvino.py): ort-graph's graph compiled per size by OpenVINO, bf16 arithmetic.

ort.py (the ONNX Runtime import, devices, session options), cuda.py (its CUDA libraries) and
rewrites.py (faster forms of onnxruntime-training's gradient graph) serve them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from nst_ort.errors import NstError

if TYPE_CHECKING:  # annotations only: the registry imports no backend and no runtime
    import numpy as np
    import onnx

    from nst_ort.config import LossSpec
    from nst_ort.loop import Objective
    from nst_ort.model import ModelInfo

# name -> the module whose `create` makes it; the first is the default.
BACKENDS = {
    # Faster on CPU (benchmarks/README.md) and needs no training build of ONNX Runtime.
    "ort-graph": "nst_ort.backends.graph",
    "ort-training": "nst_ort.backends.training",
    # The ort-graph graph in bf16 through OpenVINO (the `openvino` extra): faster, less exact.
    "openvino-bf16": "nst_ort.backends.openvino",
}
DEFAULT = next(iter(BACKENDS))


@dataclass(frozen=True)
class Prepared:
    """What one pass optimises, and what getting it ready cost (for the report)."""

    objective: Objective
    built: bool  # whether a session or artifacts had to be built for this pass
    seconds: float


class Gradient(Protocol):
    def prepare(self, spec: LossSpec, frozen: dict[str, np.ndarray], height: int, width: int) -> Prepared:
        """The objective for one pass at height x width; `frozen` holds its targets and weights."""
        ...


class Factory(Protocol):
    def __call__(
        self, model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path
    ) -> Gradient: ...


def check_name(name: str) -> str:
    """`name` if it is a registered backend; otherwise an NstError naming the config field."""
    if name not in BACKENDS:
        raise NstError(f"`backend` {name}: not one of {', '.join(BACKENDS)}")
    return name


def factory(name: str) -> Factory:
    return importlib.import_module(BACKENDS[check_name(name)]).create


def create(
    name: str, model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path
) -> Gradient:
    """The named backend for a loaded model on a resolved device ('cpu' or 'cuda')."""
    return factory(name)(model, info, device, threads, cache_root)
