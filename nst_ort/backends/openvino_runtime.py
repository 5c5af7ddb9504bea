"""The export's gradient graph in bf16 arithmetic, compiled by OpenVINO Runtime (the `openvino` package).

The same graph and settings as the openvino-bf16 backend (openvino.py: static shapes per size,
no 0-D tensors, the bf16 hint, the last size's compiled model kept, a float32 twin on the CPU
provider), without ONNX Runtime in between: OpenVINO reads the ONNX graph itself. The package
installs the module `openvino` and no `onnxruntime`, so it sits beside any ONNX Runtime in one
environment, and the `cpu` extra installs it where it has wheels and a CPU can have bf16
(pyproject.toml); `backend` auto picks this backend where bf16 beats float32
(openvino.fast_bf16: AMX, or AMD's AVX-512 BF16) and OpenVINO is installed (backends.resolve).

OpenVINO Runtime compiles and runs the graph as the provider does (benchmarks/README.md, "OpenVINO
Runtime"): in float32 its gradient is ort-graph's within 1e-6 on the HED VGG-16; in bf16 its numbers are the
provider's bit for bit and its CPU time per evaluation theirs within 2%, side by side; the loss
within about 1e-3 to 4e-3 of float32 and the gradient within 4-7% (relative L2).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.backends import openvino
from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo

NAME = "ov-bf16"  # this backend's name in the registry (nst_ort/backends/__init__.py)
INSTALL_HINT = "pip install 'nst-ort[cpu]' (the openvino package) on Linux x86-64"


def require_openvino():
    """The module `openvino`, or an NstError naming the package."""
    try:
        return importlib.import_module("openvino")
    except ImportError:
        raise NstError(f"`backend` {NAME}: the openvino package is not installed; {INSTALL_HINT}") from None


def usable(device: str) -> bool:
    """Whether `backend` auto may pick this backend: OpenVINO is installed and bf16 pays here."""
    return openvino.bf16_pays(device) and importlib.util.find_spec("openvino") is not None


class CompiledModel:
    """The gradient graph of one layer set compiled for one size, and its one infer request.

    `precision` is OpenVINO's INFERENCE_PRECISION_HINT: bf16 for the backend, f32 for checking
    the graph against ort-graph's numbers.
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        spec: LossSpec,
        height: int,
        width: int,
        threads: int,
        precision: str = "bf16",
    ):
        ov = require_openvino()
        self.Tensor = ov.Tensor
        graph = openvino.static_graph(model, spec, height, width)
        core = ov.Core()
        compiled = core.compile_model(
            core.read_model(graph.SerializeToString()), "CPU", openvino.cpu_config(threads, precision)
        )
        self.inputs = [i.name for i in graph.graph.input]
        self.outputs = [compiled.output(name) for name in (*contract.TERMS, contract.IMAGE_GRAD)]
        self.request = compiled.create_infer_request()
        self.shape = (1, 3, height, width)
        self.bound = None  # the objective whose targets the request holds

    def objective(self, frozen: dict[str, np.ndarray]) -> Evaluations:
        return Evaluations(self, frozen)


def _shareable(array: np.ndarray) -> np.ndarray:
    """`array` as float32, C-contiguous and writeable: what an OpenVINO Tensor can share (it
    refuses a read-only array, such as one that Ray hands a task without copying it)."""
    array = np.ascontiguousarray(array, np.float32)
    return array if array.flags.writeable else array.copy()


class Evaluations:
    """`value_and_grad` for one pass: a compiled model and the pass's targets and weights."""

    def __init__(self, compiled: CompiledModel, frozen: dict[str, np.ndarray]):
        missing = set(compiled.inputs) - set(frozen) - {contract.IMAGE}
        if missing:
            raise ValueError(f"no values for graph inputs {sorted(missing)}")
        self.shape = compiled.shape
        self._compiled = compiled
        # Shared with the request, copied only where read-only (_shareable; kept referenced
        # here); the scalar weights as [1] (openvino.without_scalars): np.ascontiguousarray
        # makes 0-D arrays 1-D.
        self._values = {name: _shareable(frozen[name]) for name in compiled.inputs if name != contract.IMAGE}

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        """Loss terms and dL/dimage at `image` (NCHW, float32). The gradient is a fresh array."""
        compiled, request = self._compiled, self._compiled.request
        if compiled.bound is not self:  # another pass's targets were bound since
            for name, value in self._values.items():
                request.set_tensor(name, compiled.Tensor(value, shared_memory=True))
            compiled.bound = self
        image = _shareable(image).reshape(self.shape)
        request.set_tensor(contract.IMAGE, compiled.Tensor(image, shared_memory=True))
        request.infer()
        *terms, grad = (request.get_tensor(output).data for output in compiled.outputs)
        return {name: value.item() for name, value in zip(contract.TERMS, terms, strict=True)}, grad.copy()


def create(model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path):
    openvino.check_cpu(device, openvino.cpu_flags(), NAME)
    require_openvino()
    if not info.has_gradient_graph:
        raise NstError(
            f"{info.path.name} has no gradient graph; export it again with this nst-ort "
            "or use `backend` ort-training"
        )
    return openvino.OpenVinoGradient(model, threads, compile=CompiledModel)
