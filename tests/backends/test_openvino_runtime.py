"""The ov-bf16 backend (OpenVINO Runtime) and `backend` auto's choice.

OpenVINO compiles the graph of ort-graph: in float32 the numbers must be ort-graph's up to the
order of summation, in bf16 within bf16's rounding (the bounds of test_openvino.py). The sessions
are real: the `cpu` extra installs openvino on Linux x86-64, where CI runs these (.ci/run fails
if they skip there).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from nst_ort import backends, contract
from nst_ort.backends import openvino, openvino_runtime
from nst_ort.backends.graph import GradientSession, GraphBackend
from nst_ort.config import LossSpec, Optimizer, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.model import load_model
from tests.backends.test_openvino import (
    GRADIENT_COSINE,
    GRADIENT_RTOL,
    LOSS_RTOL,
    frozen_values,
    needs_bf16,
)
from tests.requires import OPENVINO

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason=OPENVINO)

# Float32 in OpenVINO and in ONNX Runtime: the same products, summed in another order. Measured
# on the tiny export at 45x58 to 64x80: each loss term within 3.2e-5 (the style term, a small
# difference of Grams), the gradient within 2.3e-5 (relative L2). bf16's gradient is off by
# 3e-2 and its style term by 8e-3 and more, so these bounds tell the two apart.
F32_TERM_RTOL = 1e-4
F32_GRADIENT_RTOL = 1e-4

# /proc/cpuinfo as the CPUs measured (openvino.fast_bf16), for `auto`'s choice.
ZEN5 = ({"avx2", "avx512f", "avx512_bf16"}, "AuthenticAMD")
EMERALD_RAPIDS_WITHOUT_AMX = ({"avx2", "avx512f", "avx512_bf16", "avx512_fp16"}, "GenuineIntel")
SAPPHIRE_RAPIDS = ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "GenuineIntel")
ZEN3 = ({"avx2"}, "AuthenticAMD")


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, info = load_model(tiny_model)
    return tiny_model, model, info


def float32_reference(model, spec, frozen, image):
    return GraphBackend(GradientSession(model, spec, "cpu"), frozen, image.shape).value_and_grad(image)


def as_cpu(monkeypatch, cpu: tuple[set[str], str]) -> None:
    """Make the CPU-feature probe read `cpu` (flags, vendor_id); everything else stays real."""
    flags, vendor = cpu
    monkeypatch.setattr(openvino, "cpuinfo", {"flags": " ".join(sorted(flags)), "vendor_id": vendor}.get)


# --- numbers -------------------------------------------------------------------------------------


@needs_openvino
@pytest.mark.parametrize(("height", "width"), [(64, 80), (45, 58)])
def test_float32_is_ort_graph_up_to_summation_order(tiny, height, width):
    _, model, _ = tiny
    spec = LossSpec(style_weight=1e5)  # random weights give small Grams; see test_graph.py
    frozen, image = frozen_values(model, spec, height, width, seed=height)
    desired_terms, desired = float32_reference(model, spec, frozen, image)
    compiled = openvino_runtime.CompiledModel(model, spec, height, width, threads=0, precision="f32")
    actual_terms, actual = compiled.objective(frozen).value_and_grad(image)

    for name in contract.TERMS:
        assert actual_terms[name] == pytest.approx(desired_terms[name], rel=F32_TERM_RTOL, abs=1e-12), name
    assert actual.shape == desired.shape and actual.dtype == np.float32
    assert np.linalg.norm(actual - desired) / np.linalg.norm(desired) <= F32_GRADIENT_RTOL


@needs_openvino
@needs_bf16
def test_bf16_is_float32_within_bf16_rounding(tiny):
    _, model, _ = tiny
    spec = LossSpec(style_weight=1e5)
    frozen, image = frozen_values(model, spec, 64, 80, seed=1)
    desired_terms, desired = float32_reference(model, spec, frozen, image)
    compiled = openvino_runtime.CompiledModel(model, spec, 64, 80, threads=0)
    actual_terms, actual = compiled.objective(frozen).value_and_grad(image)

    assert actual_terms[contract.LOSS] == pytest.approx(desired_terms[contract.LOSS], rel=LOSS_RTOL)
    difference = np.linalg.norm(actual - desired) / np.linalg.norm(desired)
    cosine = float(np.sum(actual * desired) / np.linalg.norm(actual) / np.linalg.norm(desired))
    assert difference <= GRADIENT_RTOL and cosine >= GRADIENT_COSINE
    assert difference > 1e-5, "no bf16 rounding: OpenVINO ran float32"


@needs_openvino
def test_two_passes_on_one_compiled_model_keep_their_own_targets(tiny):
    """A sweep's cells at one size share the compiled model; each pass evaluates towards its own
    targets, whichever was evaluated last."""
    _, model, _ = tiny
    # No TV: it does not depend on the targets, and on a noise image it would outweigh them.
    spec = LossSpec(style_weight=1e5, tv_weight=0.0)
    first, image = frozen_values(model, spec, 48, 64, seed=1)
    second, _ = frozen_values(model, spec, 48, 64, seed=2)
    compiled = openvino_runtime.CompiledModel(model, spec, 48, 64, threads=0, precision="f32")
    a, b = compiled.objective(first), compiled.objective(second)
    a_terms, a_grad = a.value_and_grad(image)
    b_terms, _ = b.value_and_grad(image)
    again_terms, again_grad = a.value_and_grad(image)

    assert b_terms[contract.LOSS] != pytest.approx(a_terms[contract.LOSS], rel=1e-3)
    assert again_terms == a_terms
    np.testing.assert_array_equal(again_grad, a_grad)


@needs_openvino
def test_read_only_targets_and_image_are_evaluated_as_writeable_ones(tiny):
    """A tile on a Ray worker gets its targets and image as read-only arrays (Ray hands them over
    without copying), which an OpenVINO Tensor cannot share: they are copied, not refused."""
    _, model, _ = tiny
    spec = LossSpec(style_weight=1e5)
    frozen, image = frozen_values(model, spec, 48, 64, seed=3)
    compiled = openvino_runtime.CompiledModel(model, spec, 48, 64, threads=0, precision="f32")
    desired_terms, desired = compiled.objective(frozen).value_and_grad(image)
    locked = {name: np.array(value) for name, value in {**frozen, "image": image}.items()}
    for value in locked.values():
        value.flags.writeable = False
    image = locked.pop("image")
    actual_terms, actual = compiled.objective(locked).value_and_grad(image)
    assert actual_terms == desired_terms
    np.testing.assert_array_equal(actual, desired)


@needs_openvino
@needs_bf16
def test_one_compiled_model_per_size_and_the_float32_twin(tiny):
    """The openvino-bf16 backend's cache, and its twin: what L-BFGS finishes on is ort-graph's
    float32 objective exactly (nst_ort.loop.PRECISE_BELOW)."""
    path, model, _ = tiny
    engine = Engine(path, "cpu", backend="ov-bf16")
    spec = LossSpec(style_weight=1e5)
    sizes = [(48, 64), (48, 64), (40, 64)]
    built = [
        engine.gradient.prepare(spec, frozen_values(model, spec, h, w, seed=i)[0], h, w).built
        for i, (h, w) in enumerate(sizes)
    ]
    assert built == [True, False, True]

    frozen, image = frozen_values(model, spec, 48, 64)
    twin = engine.gradient.prepare(spec, frozen, 48, 64).objective.precise
    actual_terms, actual = twin.value_and_grad(image)
    desired_terms, desired = float32_reference(model, spec, frozen, image)
    assert actual_terms == desired_terms
    np.testing.assert_array_equal(actual, desired)


@needs_openvino
@needs_bf16
@pytest.mark.parametrize("optimizer", [Optimizer.LBFGS, Optimizer.ADAM])
def test_both_optimisers_lower_the_loss(tiny, optimizer):
    engine = Engine(tiny[0], "cpu", backend="ov-bf16")
    # The plain TV: from noise, 15 Adam steps against the default colour TV (k = 20) on this
    # random network swing by 4x before they settle, which says nothing about bf16.
    spec = LossSpec(style_weight=1e5, tv_chroma=1.0)
    rng = np.random.default_rng(0)
    content, style = rng.random((2, 48, 64, 3), dtype=np.float32)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (48, 64))
    start = rng.random((1, 3, 48, 64), dtype=np.float32)
    result, _ = engine.optimize(spec, targets, start, optimizer, 15, 0.02)
    losses = [record.terms[contract.LOSS] for record in result.records]
    assert result.status.value == "done" and len(losses) == 15
    assert min(losses) < 0.5 * losses[0]
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


# --- auto ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "desired"),
    [(ZEN5, True), (SAPPHIRE_RAPIDS, True), (EMERALD_RAPIDS_WITHOUT_AMX, False), (ZEN3, False)],
)
def test_bf16_pays_with_amx_or_amd_avx512_bf16(cpu, desired):
    assert openvino.fast_bf16(*cpu) is desired
    assert openvino.fast_bf16(None, None) is False  # unreadable (not Linux): float32


@needs_openvino
@pytest.mark.parametrize("cpu", [ZEN5, SAPPHIRE_RAPIDS])
def test_auto_runs_bf16_through_openvino_where_it_pays(tiny, monkeypatch, cpu):
    as_cpu(monkeypatch, cpu)
    engine = Engine(tiny[0], "cpu", backend="auto")
    assert engine.backend == "ov-bf16"
    assert isinstance(engine.gradient, openvino.OpenVinoGradient)
    assert engine.gradient.compile is openvino_runtime.CompiledModel


@pytest.mark.parametrize("cpu", [EMERALD_RAPIDS_WITHOUT_AMX, ZEN3])
def test_auto_runs_ort_graph_where_bf16_does_not_pay(tiny, monkeypatch, cpu):
    as_cpu(monkeypatch, cpu)
    engine = Engine(tiny[0], "cpu", backend="auto")
    assert engine.backend == "ort-graph"
    assert type(engine.gradient).__name__ == "GraphGradient"


def test_auto_runs_ort_graph_without_openvino(tiny, monkeypatch):
    as_cpu(monkeypatch, ZEN5)
    monkeypatch.setitem(sys.modules, "openvino", None)  # as where it was never installed
    assert Engine(tiny[0], "cpu", backend="auto").backend == "ort-graph"


def test_the_report_and_the_first_line_name_the_backend_that_ran(
    tiny_model, make_image, tmp_path, cli_process
):
    """In a fresh process with the CPU probe's answer fixed: auto becomes ov-bf16 where it pays
    and OpenVINO is installed, ort-graph elsewhere, and both the CLI and the report say which."""
    desired = "ov-bf16" if HAS_OPENVINO else "ort-graph"
    report, out = tmp_path / "r.json", tmp_path / "o.png"
    flags, vendor = ZEN5
    probe = (
        "from nst_ort.backends import openvino\n"
        f"openvino.cpuinfo = {{'flags': {' '.join(sorted(flags))!r}, 'vendor_id': {vendor!r}}}.get\n"
    )
    code = probe + "from nst_ort.cli import main; main()"
    args = [
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model,
        "--size", 48, "--iterations", 2, "--report", report,
    ]  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0].startswith(f"device: cpu; backend: {desired}; model: ")
    data = json.loads(report.read_text())
    assert data["backend"] == desired and data["config"]["backend"] == "auto"
    assert out.is_file()


def test_a_cuda_device_gets_ort_graph():
    assert backends.resolve("auto", "cuda") == "ort-graph"
    assert StylizeConfig().backend == "auto"


# --- refusals ------------------------------------------------------------------------------------


def test_the_gpu_is_refused_in_one_line(tiny):
    _, model, info = tiny
    with pytest.raises(NstError) as error:
        openvino_runtime.create(model, info, "cuda", 0, tiny[0].parent)
    assert str(error.value) == "`backend` ov-bf16 runs on the CPU; use `device` cpu or auto"


def test_a_cpu_without_bf16_is_refused(tiny, monkeypatch):
    as_cpu(monkeypatch, ZEN3)
    _, model, info = tiny
    with pytest.raises(NstError, match=r"^`backend` ov-bf16: this CPU has no bf16 arithmetic .*use that$"):
        openvino_runtime.create(model, info, "cpu", 0, tiny[0].parent)


@needs_bf16  # elsewhere the CPU is refused first (test_a_cpu_without_bf16_is_refused)
def test_a_missing_openvino_names_the_package(tiny_model, make_image, tmp_path, cli_process):
    out = tmp_path / "o.png"
    result = cli_process(
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model,
        "--backend", "ov-bf16", "--size", 32, "--iterations", 1, hide=("openvino",),
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"error: --backend ov-bf16: the openvino package is not installed; {openvino_runtime.INSTALL_HINT}"
    )
    assert not out.exists()
