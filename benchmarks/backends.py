"""The backends a benchmark can compare, in one registry.

A backend is a name, a way to say why it cannot run here (None when it can), and a factory that
builds, untimed, an evaluator for one `Case`: an object with `shape` and
`value_and_grad(image) -> (terms, dL/dimage)`, the interface nst_ort's loop drives
(`nst_ort.loop.Objective`). `terms` holds at least `contract.LOSS`.

Adding a backend is one `register(Backend(...))` call; every benchmark parametrised over
`BACKENDS` picks it up, and is skipped with the backend's reason where it cannot run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.workload import SPEC, WEIGHTS_SEED, Case
from nst_ort import contract
from nst_ort.graphs import target_shapes

Evaluator = object  # anything with .shape and .value_and_grad(image) -> (dict, ndarray)


@dataclass(frozen=True)
class Backend:
    name: str  # "<engine>-<device>", e.g. "ort-cpu"
    device: str  # "cpu" or "cuda"
    unavailable: Callable[[], str | None]  # why it cannot run here, or None
    make: Callable[[Case], Evaluator]
    # How far from torch-cpu's float32 loss (relative) and gradient (relative L2) it may be.
    loss_rtol: float = 1e-4
    gradient_rtol: float = 1e-2


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    BACKENDS[backend.name] = backend
    return backend


# --- torch: eager autograd of the module that was exported -----------------------------------------


class TorchEvaluator:
    """`export.exporter.build_loss_module` restricted to the layers in use, VGG weights frozen."""

    def __init__(self, case: Case, device: str):
        import torch

        from export.exporter import ExportSpec, build_loss_module
        from export.weights import random_weights

        torch.set_num_threads(case.threads)
        self._torch = torch
        self.device = torch.device(device)
        module = build_loss_module(
            ExportSpec(
                arch=case.arch,
                pooling=case.pooling,
                content_layers=tuple(SPEC.content_layers),
                style_layers=tuple(SPEC.style_layers),
            ),
            random_weights(case.arch, seed=WEIGHTS_SEED),
        )
        for parameter in module.parameters():  # build_loss_module freezes the convs already
            parameter.requires_grad_(False)
        module.sliced = False  # the Gram terms alone, as the run the other backends make
        self.module = module.to(self.device)
        image, values = case.load_inputs()
        self.shape = image.shape
        # The module's sliced inputs, unused: zeros of their shapes.
        sliced = dataclasses.replace(SPEC, style_loss=contract.StyleLoss.SLICED)
        unused = {
            name: np.zeros(shape, np.float32)
            for name, shape in target_shapes(sliced, *image.shape[2:]).items()
        }
        self.inputs = [
            torch.from_numpy({**unused, **values}[name]).to(self.device)
            for name in self.module.input_names()[1:]
        ]

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32)).to(self.device).requires_grad_(True)
        outputs = self.module(x, *self.inputs)
        outputs[0].backward()
        terms = contract.TERMS
        values = {name: value.item() for name, value in zip(terms, outputs[:4], strict=True)}
        return values, x.grad.cpu().numpy()


def _torch_unavailable(device: str) -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (pip install 'nst-ort[export]')"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return f"no CUDA device for torch (torch {torch.__version__})"
    return None


# --- onnxruntime-training: the project's runtime path --------------------------------------------


def _training_backend(case: Case, device: str):
    from nst_ort.backends import artifacts
    from nst_ort.backends.training import TrainingBackend
    from nst_ort.model import load_model

    model, info = load_model(case.model)
    entry = artifacts.ensure(model, info.sha256, SPEC, case.size, case.size, case.cache)
    _, values = case.load_inputs()
    return TrainingBackend(entry, values, device, case.threads)


def _ort_training_unavailable(device: str) -> str | None:
    from nst_ort.backends import ort as runtime

    if runtime.ort is None:
        return "onnxruntime is not installed"
    if not runtime.has_training():
        return "this onnxruntime has no training API (onnxruntime-training 1.19.2 needed)"
    if device == "cuda" and not runtime.cuda_available():
        providers = ", ".join(runtime.ort.get_available_providers())
        return f"no CUDA execution provider (this onnxruntime has {providers})"
    return None


# --- standard-ONNX gradient graph (issue 9) --------------------------------------------------------


def _graph_unavailable(device: str) -> str | None:
    from nst_ort.backends import ort as runtime  # plain onnxruntime is enough: no training API needed

    if runtime.ort is None:
        return "onnxruntime is not installed"
    if device == "cuda" and not runtime.cuda_available():
        return "no CUDA execution provider"
    return None


def _graph_backend(case: Case, device: str):
    from nst_ort.backends.graph import GradientSession, GraphBackend
    from nst_ort.model import load_model

    model, _ = load_model(case.model)
    image, values = case.load_inputs()
    session = GradientSession(model, SPEC, device, case.threads)
    return GraphBackend(session, values, image.shape)


for _device in ("cpu", "cuda"):
    register(
        Backend(
            f"torch-{_device}",
            _device,
            lambda d=_device: _torch_unavailable(d),
            lambda case, d=_device: TorchEvaluator(case, d),
        )
    )
    register(
        Backend(
            f"ort-{_device}",
            _device,
            lambda d=_device: _ort_training_unavailable(d),
            lambda case, d=_device: _training_backend(case, d),
        )
    )
    register(
        Backend(
            f"ort-graph-{_device}",
            _device,
            lambda d=_device: _graph_unavailable(d),
            lambda case, d=_device: _graph_backend(case, d),
        )
    )


# --- bf16 through OpenVINO (the `openvino` extra, its own environment) ---------------------------


def _openvino_unavailable() -> str | None:
    from nst_ort.backends import openvino
    from nst_ort.errors import NstError

    try:
        openvino.check_runtime("cpu")
    except NstError as exc:
        return str(exc).removeprefix(f"`backend` {openvino.NAME}: ")
    return None


def _openvino_backend(case: Case):
    from nst_ort.backends.openvino import CompiledSession
    from nst_ort.model import load_model

    model, _ = load_model(case.model)
    _, values = case.load_inputs()
    return CompiledSession(model, SPEC, case.size, case.size, case.threads).objective(values)


# bf16 keeps 8 significant bits: measured against torch at 128-512 px on random weights, the loss
# within 3e-3 and the gradient within 0.05-0.10 (relative L2); the HED weights give 1e-3 and
# 0.04-0.05 (nst_ort/backends/openvino.py).
register(
    Backend(
        "openvino-bf16-cpu",
        "cpu",
        _openvino_unavailable,
        _openvino_backend,
        loss_rtol=1e-2,
        gradient_rtol=0.2,
    )
)


# The same graph and precision through OpenVINO Runtime (the `openvino` package, which the cpu
# extra installs on Linux x86-64 beside onnxruntime): the same numbers as openvino-bf16-cpu.
def _ov_unavailable() -> str | None:
    from nst_ort.backends import openvino, openvino_runtime
    from nst_ort.errors import NstError

    try:
        openvino.check_cpu("cpu", openvino.cpu_flags(), openvino_runtime.NAME)
        openvino_runtime.require_openvino()
    except NstError as exc:
        return str(exc).removeprefix(f"`backend` {openvino_runtime.NAME}: ")
    return None


def _ov_backend(case: Case):
    from nst_ort.backends.openvino_runtime import CompiledModel
    from nst_ort.model import load_model

    model, _ = load_model(case.model)
    _, values = case.load_inputs()
    return CompiledModel(model, SPEC, case.size, case.size, case.threads).objective(values)


register(Backend("ov-bf16-cpu", "cpu", _ov_unavailable, _ov_backend, loss_rtol=1e-2, gradient_rtol=0.2))

REFERENCE = "torch-cpu"  # what the others are timed and checked against


def require(name: str) -> Backend:
    """The backend, or a pytest skip that says why it cannot run here."""
    import pytest

    reason = BACKENDS[name].unavailable()
    if reason:
        pytest.skip(f"{name}: {reason}")
    return BACKENDS[name]
