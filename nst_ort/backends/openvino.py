"""The export's gradient graph in bf16 arithmetic, through ONNX Runtime's OpenVINO execution provider.

ONNX Runtime's CPU kernels have no bf16 arithmetic on x86; OpenVINO's CPU plugin does, on CPUs
with AVX-512 BF16 or AMX, at about twice the float32 matrix rate. The `openvino` extra
(onnxruntime-openvino) installs an onnxruntime with that provider. Measured here (2-core EPYC,
AVX-512 BF16, benchmarks/README.md): an evaluation takes about 0.65x the CPU provider's time,
the loss within about 1e-3 of float32 and the gradient within 3-5% (relative L2).

How it is run, and why:

- One compiled session per layer set and image size (the last size's kept: OpenVinoGradient), with
  every input's shape made static.
  On the graph with dynamic height and width the provider fails at the first run with "Output
  names mismatch between OpenVINO and ONNX"; with the image's shape static it runs, whichever of
  the outputs are kept (the loss terms and image.grad, all the gradient graph has, are what the
  loop needs). Static shapes also let OpenVINO plan its memory once; compiling costs about 1 s at
  256 px and 4.5 s at 512 px, once per size.
- No 0-D tensors (without_scalars): the provider leaves nodes with scalar outputs to the CPU
  provider, and each one cut the graph into separately compiled pieces. Without them it compiles
  the whole graph as one.
- `INFERENCE_PRECISION_HINT` bf16: without it the provider runs float32, 1.13x slower than the
  CPU provider. `INFERENCE_NUM_THREADS` from `threads` (0: one per core), since OpenVINO would
  otherwise pick its own count.
- Only the gradient is bf16: the targets come from the CPU provider in float32, computed once per
  pass (nst_ort.targets), so every pass aims at the same numbers as on the float32 backends.

The evaluations then go through the ort-graph backend's GraphBackend (IOBinding); the loop on the host.
What bf16's error does to each optimiser (benchmarks/README.md, "bf16"): Adam keeps pace with
float32 step for step and runs in bf16 throughout; L-BFGS keeps pace while the loss falls fast
and then falls behind, so it finishes in float32 (Bf16Objective.precise, nst_ort.loop).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nst_ort import contract
from nst_ort.backends import Prepared
from nst_ort.backends import ort as runtime
from nst_ort.backends.graph import GraphBackend, GraphGradient
from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.graphs import gradient_graph, target_shapes
from nst_ort.model import ModelInfo

NAME = "openvino-bf16"  # this backend's name in the registry (nst_ort/backends/__init__.py)
PROVIDER = "OpenVINOExecutionProvider"
PYTHONS = ((3, 11), (3, 13))  # onnxruntime-openvino 1.24.1 has wheels for these, and between
# /proc/cpuinfo flags of the instructions OpenVINO's CPU plugin runs bf16 with.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpuinfo(field: str) -> str | None:
    """The first `field` of /proc/cpuinfo (Linux), or None where it cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.split(":", 1)[0].strip() == field:
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags (Linux), or None where they cannot be read."""
    flags = cpuinfo("flags")
    return None if flags is None else set(flags.split())


def fast_bf16(flags: set[str] | None, vendor: str | None) -> bool:
    """Whether bf16 runs faster than float32 on a CPU with these `flags` and this vendor_id.

    Measured per evaluation against ort-graph (benchmarks/README.md, "bf16"): 0.65x on an AMD
    Zen 5 with AVX-512 BF16, 1.8x on an Intel Emerald Rapids whose AMX the hypervisor hides. Intel
    cores issue VDPBF16PS on one port, no more arithmetic per cycle than float32 FMAs on two, and
    the conversions to bf16 come on top; AMD's issue it on two pipes. Intel's bf16 pays with AMX.
    """
    flags = flags or set()
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor == "AuthenticAMD")


def install_hint() -> str:
    """How to get the provider on this Python."""
    (low, high), here = PYTHONS, sys.version_info[:2]
    if not low <= here <= high:
        return (
            f"onnxruntime-openvino has no wheels for Python {here[0]}.{here[1]}: "
            f"use Python {low[0]}.{low[1]}-{high[0]}.{high[1]} with pip install 'nst-ort[openvino]'"
        )
    # It installs the module onnxruntime: beside another ONNX Runtime package, one overwrites the other.
    return "pip install 'nst-ort[openvino]' in an environment of its own (onnxruntime-openvino)"


def check_runtime(device: str) -> None:
    """Refuse, with one line naming the fix, what cannot run bf16 through OpenVINO."""
    if runtime.ort is None:
        raise NstError(f"`backend` {NAME}: onnxruntime is not installed; {install_hint()}")
    runtime.require_ort()  # two ONNX Runtime packages in one environment: says which to remove
    check_provider(runtime.ort.get_available_providers())
    check_cpu(device, cpu_flags())


def check_provider(available: list[str]) -> None:
    """Refuse an onnxruntime whose providers (`available`) lack OpenVINO's."""
    if PROVIDER not in available:
        raise NstError(
            f"`backend` {NAME}: this onnxruntime ({runtime.package_name()} {runtime.ort.__version__}) "
            f"has no OpenVINO execution provider; {install_hint()}"
        )


def check_cpu(device: str, flags: set[str] | None, name: str = NAME) -> None:
    """Refuse a device other than the CPU, and a CPU whose `flags` show no bf16 instructions
    (None: unreadable, let OpenVINO decide); `name` is the backend refused."""
    if device != "cpu":
        raise NstError(f"`backend` {name} runs on the CPU; use `device` cpu or auto")
    if flags is not None and not flags & set(BF16_FLAGS):
        raise NstError(
            f"`backend` {name}: this CPU has no bf16 arithmetic ({' or '.join(BF16_FLAGS)}), where "
            "OpenVINO would run float32 more slowly than `backend` ort-graph; use that"
        )


def bf16_pays(device: str) -> bool:
    """Whether `device` is a CPU where bf16 is known to beat float32 (fast_bf16): what `backend`
    auto asks before it picks a bf16 backend."""
    return device == "cpu" and fast_bf16(cpu_flags(), cpuinfo("vendor_id"))


def usable(device: str) -> bool:
    """Whether `backend` auto may pick this backend: the provider is there and bf16 pays."""
    if runtime.ort is None or len(runtime.installed_packages()) > 1 or not bf16_pays(device):
        return False
    return PROVIDER in runtime.ort.get_available_providers()


def without_scalars(graph: onnx.GraphProto) -> None:
    """Every scalar in the graph made a 1-element vector, in place: inputs, sums and outputs.

    OpenVINO's provider takes no node with a 0-D output. Each sum of a loss term (ReduceSum over
    every axis) and the arithmetic on the scalar weights after it fell to the CPU provider and
    split the graph into separately compiled pieces with copies between them: 15 for the default
    loss, and still 3 when only Reshapes back to 0-D were left at the outputs. As 1-element
    vectors throughout it compiles whole (one piece; 19% less time at 256 px, measured side by
    side). The scalar weights are fed as [1] (OpenVinoGradient.prepare); GraphBackend reads the
    loss terms with .item(), so [1] outputs serve it as scalars do.
    """
    flat, axis = "openvino.flat", "openvino.axis_zero"
    nodes = []
    for node in graph.node:
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if node.op_type == "ReduceSum" and len(node.input) == 1 and not keepdims:
            vector = f"{node.input[0]}.flat"
            nodes.append(helper.make_node("Reshape", [node.input[0], flat], [vector]))
            node = helper.make_node("ReduceSum", [vector, axis], list(node.output), keepdims=1)
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], np.int64), flat),
            numpy_helper.from_array(np.array([0], np.int64), axis),
        ]
    )
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if not len(dims):
            dims.add().dim_value = 1
    del graph.value_info[:]


def static_graph(model: onnx.ModelProto, spec: LossSpec, height: int, width: int) -> onnx.ModelProto:
    """The gradient graph with every input's shape fixed for a height x width image, in the
    form OpenVINO's provider takes whole."""
    graph = gradient_graph(model, spec)
    image = (1, 3, height, width)
    shapes = {contract.IMAGE: image, contract.IMAGE_GRAD: image, **target_shapes(spec, height, width)}
    for value in (*graph.graph.input, *graph.graph.output):
        dims = value.type.tensor_type.shape.dim
        shape = shapes.get(value.name, ())  # the weights and loss terms are scalars
        del dims[:]
        for size in shape:
            dims.add().dim_value = size
    without_scalars(graph.graph)
    return graph


def cpu_config(threads: int, precision: str = "bf16") -> dict[str, str]:
    """OpenVINO's CPU plugin settings, through the provider or OpenVINO Runtime (openvino_runtime.py)."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": str(threads or len(os.sched_getaffinity(0))),
        "PERFORMANCE_HINT": "LATENCY",
    }


def provider_options(threads: int) -> dict[str, str]:
    return {"device_type": "CPU", "load_config": json.dumps({"CPU": cpu_config(threads)})}


class CompiledSession:
    """One session compiled by OpenVINO for one layer set at one size (what GraphBackend binds)."""

    device = "cpu"

    def __init__(self, model: onnx.ModelProto, spec: LossSpec, height: int, width: int, threads: int):
        graph = static_graph(model, spec, height, width)
        self.inputs = [i.name for i in graph.graph.input]
        self.shape = (1, 3, height, width)
        self.session = runtime.ort.InferenceSession(
            graph.SerializeToString(),
            runtime.session_options(threads),
            providers=[(PROVIDER, provider_options(threads)), "CPUExecutionProvider"],
        )

    def objective(self, frozen: dict[str, np.ndarray]) -> GraphBackend:
        """Evaluations towards these targets and weights (scalars fed as [1]: without_scalars)."""
        vectors = {name: np.reshape(v, (1,)) if np.ndim(v) == 0 else v for name, v in frozen.items()}
        return GraphBackend(self, vectors, self.shape)


class Bf16Objective:
    """bf16 evaluations (the loop's Objective), with a float32 twin.

    `precise` is the same objective on the CPU provider in float32, built when first asked for:
    L-BFGS finishes on it once bf16's rounding holds it back (nst_ort.loop.PRECISE_BELOW); Adam
    never asks, it runs in bf16 to the end (benchmarks/README.md, "bf16").
    """

    def __init__(self, fast: GraphBackend, precise: Callable[[], GraphBackend]):
        self._fast, self._make_precise, self._precise = fast, precise, None
        self.shape = fast.shape

    @property
    def precise(self) -> GraphBackend:
        if self._precise is None:
            self._precise = self._make_precise()
        return self._precise

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        return self._fast.value_and_grad(image)


class OpenVinoGradient:
    """The openvino-bf16 and ov-bf16 backends of one engine: per layer set, the compiled session
    of the size last asked for, and the float32 session of the twins (any size, as ort-graph's).

    Only the last size is kept: a compiled session holds its buffers for its size (measured with
    the default loss: 0.5 GB at 512x384 px, and 2.1 GB of RSS with all five of the coarse-to-fine
    ladder kept), and runs go from size to size without coming back, while a sweep stays at one.
    """

    def __init__(self, model: onnx.ModelProto, threads: int, compile: Callable = CompiledSession):
        # compile(model, spec, height, width, threads): a session with `objective(frozen)`; the
        # ov-bf16 backend passes its own (openvino_runtime.py).
        self.model, self.threads, self.compile = model, threads, compile
        self._sessions: dict[str, tuple[tuple[int, int], CompiledSession]] = {}
        self._float32 = GraphGradient(model, "cpu", threads)

    def prepare(self, spec: LossSpec, frozen: dict[str, np.ndarray], height: int, width: int) -> Prepared:
        start = time.perf_counter()
        layers = spec.layer_key()
        kept = self._sessions.get(layers)
        built = kept is None or kept[0] != (height, width)
        if built:
            self._sessions.pop(layers, None)  # its buffers go before the next size's are made
            session = self.compile(self.model, spec, height, width, self.threads)
            self._sessions[layers] = ((height, width), session)
        session = self._sessions[layers][1]
        objective = Bf16Objective(
            session.objective(frozen),
            lambda: self._float32.prepare(spec, frozen, height, width).objective,
        )
        if built:  # OpenVINO compiles at the first run: count it as building, not as the loop's
            objective.value_and_grad(np.zeros((1, 3, height, width), np.float32))
        return Prepared(objective, built, time.perf_counter() - start)


def create(model: onnx.ModelProto, info: ModelInfo, device: str, threads: int, cache_root: Path):
    check_runtime(device)
    if not info.has_gradient_graph:
        raise NstError(
            f"{info.path.name} has no gradient graph; export it again with this nst-ort "
            "or use `backend` ort-training"
        )
    return OpenVinoGradient(model, threads)
