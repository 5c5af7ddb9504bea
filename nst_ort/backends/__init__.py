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
- openvino-bf16 (openvino.py): ort-graph's graph compiled per size by OpenVINO, bf16 arithmetic,
  through ONNX Runtime's OpenVINO execution provider (onnxruntime-openvino, an environment of its own).
- ov-bf16 (openvino_runtime.py): the same through OpenVINO Runtime (the openvino package, beside
  any ONNX Runtime).

`auto`, the default, stands for the fastest of them that can run here (resolve): the engine
resolves it once the device is known, and the report records what it resolved to.

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

# name -> the module whose `create` makes it.
BACKENDS = {
    # Faster on CPU (benchmarks/README.md) and needs no training build of ONNX Runtime.
    "ort-graph": "nst_ort.backends.graph",
    "ort-training": "nst_ort.backends.training",
    # The ort-graph graph in bf16 through ONNX Runtime's OpenVINO provider (the `openvino` extra).
    "openvino-bf16": "nst_ort.backends.openvino",
    # The same in bf16 through OpenVINO Runtime (the `cpu` extra installs it on Linux x86-64).
    "ov-bf16": "nst_ort.backends.openvino_runtime",
}
# `auto` (the default) is the first of these whose module's `usable(device)` says it can run
# here: bf16 where the CPU has bf16 instructions and a runtime for it is installed (about 0.6x
# ort-graph's time per evaluation, benchmarks/README.md, "bf16"), float32 ort-graph elsewhere.
AUTO = "auto"
AUTO_ORDER = ("ov-bf16", "openvino-bf16", "ort-graph")
DEFAULT = AUTO


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
    """`name` if it is auto or a registered backend; otherwise an NstError naming the config field."""
    if name != AUTO and name not in BACKENDS:
        raise NstError(f"`backend` {name}: not one of {AUTO}, {', '.join(BACKENDS)}")
    return name


def resolve(name: str, device: str) -> str:
    """The backend `name` stands for on a resolved device ('cpu' or 'cuda'): itself, or for
    auto the first of AUTO_ORDER that can run there."""
    if check_name(name) != AUTO:
        return name
    for candidate in AUTO_ORDER:
        usable = getattr(importlib.import_module(BACKENDS[candidate]), "usable", None)
        if usable is None or usable(device):
            return candidate
    return AUTO_ORDER[-1]


def factory(name: str) -> Factory:
    """The named backend's `create` (not auto: resolve it first)."""
    if check_name(name) == AUTO:
        raise ValueError("resolve `backend` auto for a device first (backends.resolve)")
    return importlib.import_module(BACKENDS[name]).create


def create(
    name: str, model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path
) -> Gradient:
    """The named backend (auto resolved) for a loaded model on a resolved device ('cpu' or 'cuda')."""
    return factory(resolve(name, device))(model, info, device, threads, cache_root)
