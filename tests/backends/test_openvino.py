"""The openvino-bf16 backend: its refusals anywhere, its numbers where onnxruntime-openvino is installed.

The numeric tests compare bf16 against the float32 CPU provider on the same graph and skip where
this onnxruntime has no OpenVINO provider (CI runs them in an environment with the `openvino`
extra, on a model exported beforehand: NST_ORT_TEST_MODEL, conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.backends import openvino
from nst_ort.backends import ort as runtime
from nst_ort.backends.graph import GradientSession, GraphBackend
from nst_ort.config import LossSpec, Optimizer
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.graphs import weight_values
from nst_ort.model import load_model
from nst_ort.targets import TargetComputer

HAS_OPENVINO = runtime.ort is not None and openvino.PROVIDER in runtime.ort.get_available_providers()
HAS_BF16 = (openvino.cpu_flags() or set()) & set(openvino.BF16_FLAGS)
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason="onnxruntime-openvino is not installed (pip install 'nst-ort[openvino]')"
)
needs_bf16 = pytest.mark.skipif(
    not HAS_BF16, reason="this CPU has no bf16 arithmetic (avx512_bf16, amx_bf16)"
)

# bf16 keeps 8 significant bits: each product is off by up to 2^-9 (2e-3) relative, OpenVINO
# accumulates in float32. On the tiny random-weight VGG-16 at 64x80 the loss came out within
# 3e-3 of float32 and the gradient within 0.10 (relative L2; 0.04-0.05 on the HED weights at
# 256 px, where sums run over more terms). The bounds leave twice that; a wrong graph, a missing
# term or float32 where bf16 was asked for would not pass them (a gradient pointing elsewhere
# has a cosine far below 0.97; float32 agrees to 1e-6).
LOSS_RTOL = 1e-2
GRADIENT_RTOL = 0.2  # relative L2 norm of the difference
GRADIENT_COSINE = 0.97


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, info = load_model(tiny_model)
    return tiny_model, model, info


def frozen_values(model, spec: LossSpec, height: int, width: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    content, style = rng.random((2, height, width, 3), dtype=np.float32)
    targets = TargetComputer(model, spec, "cpu")
    values = {
        **targets.content_targets(content),
        **targets.style_targets([style], [1.0], (height, width), 1.0),
        **weight_values(spec),
    }
    return values, rng.random((1, 3, height, width), dtype=np.float32)


# --- refusals: anywhere --------------------------------------------------------------------------


@pytest.mark.skipif(runtime.ort is None, reason="no onnxruntime at all")
def test_a_provider_list_without_openvino_names_the_extra():
    with pytest.raises(NstError) as error:
        openvino.check_provider(["CPUExecutionProvider"])
    assert str(error.value) == (
        f"`backend` openvino-bf16: this onnxruntime ({runtime.package_name()} {runtime.ort.__version__}) "
        f"has no OpenVINO execution provider; {openvino.install_hint()}"
    )
    openvino.check_provider([openvino.PROVIDER, "CPUExecutionProvider"])


@pytest.mark.skipif(HAS_OPENVINO, reason="this onnxruntime has the OpenVINO provider")
def test_an_engine_without_the_provider_is_refused(tiny):
    with pytest.raises(NstError, match=r"^`backend` openvino-bf16: .*has no OpenVINO execution provider; "):
        Engine(tiny[0], "cpu", backend="openvino-bf16")


@pytest.mark.parametrize(
    ("version", "hint"),
    [
        ((3, 12, 1), "pip install 'nst-ort[openvino]' in an environment of its own (onnxruntime-openvino)"),
        ((3, 10, 4), "onnxruntime-openvino has no wheels for Python 3.10: use Python 3.11-3.13 with pip "),
        ((3, 14, 0), "onnxruntime-openvino has no wheels for Python 3.14: use Python 3.11-3.13 with pip "),
    ],
)
def test_the_install_hint_fits_the_python(monkeypatch, version, hint):
    monkeypatch.setattr(openvino.sys, "version_info", version)
    assert openvino.install_hint().startswith(hint)


def test_a_missing_onnxruntime_is_one_line(tiny_model, make_image, tmp_path, cli_process):
    """Where no onnxruntime is installed at all, the command line says so before any backend is
    built (resolving the device needs it), and the backend's own check names its extra."""
    out = tmp_path / "o.png"
    result = cli_process(
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model,
        "--backend", "openvino-bf16", "--size", 32, "--iterations", 1, hide=("onnxruntime",),
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: onnxruntime is not installed; ")
    assert not out.exists()

    check = (
        "import sys; sys.modules['onnxruntime'] = None\n"
        "from nst_ort.backends import openvino\n"
        "try:\n    openvino.check_runtime('cpu')\nexcept Exception as exc:\n    print(exc)"
    )
    actual = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    desired = f"`backend` openvino-bf16: onnxruntime is not installed; {openvino.install_hint()}"
    assert actual.stdout.strip() == desired


def test_a_cpu_without_bf16_is_refused():
    with pytest.raises(NstError, match="this CPU has no bf16 arithmetic.*use that$"):
        openvino.check_cpu("cpu", {"avx2", "avx512f"})
    openvino.check_cpu("cpu", {"avx2", "avx512_bf16"})
    openvino.check_cpu("cpu", {"amx_bf16"})
    openvino.check_cpu("cpu", None)  # unreadable: let OpenVINO decide
    with pytest.raises(NstError, match="runs on the CPU; use `device` cpu or auto"):
        openvino.check_cpu("cuda", {"avx512_bf16"})


def test_the_cli_names_the_option_and_the_fix(tiny_model, make_image, tmp_path, cli):
    if HAS_OPENVINO:
        pytest.skip("this onnxruntime has the OpenVINO provider")
    out = tmp_path / "o.png"
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model,
        "--backend", "openvino-bf16", "--size", 32, "--iterations", 1,
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.error.startswith("error: --backend openvino-bf16: this onnxruntime (")
    assert "has no OpenVINO execution provider; " in result.error and "'nst-ort[openvino]'" in result.error
    assert not out.exists()


def test_the_static_graph_fixes_every_input_shape(tiny):
    _, model, _ = tiny
    spec = LossSpec()
    graph = openvino.static_graph(model, spec, 48, 64)
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
    assert shapes[contract.IMAGE] == [1, 3, 48, 64]
    assert shapes[contract.content_target("relu4_2")] == [1, 512, 6, 8]
    assert shapes[contract.style_target("relu1_1")] == [64, 64]
    assert shapes[contract.ALPHA] == [1]  # no 0-D tensors: see openvino.without_scalars
    assert all(d.dim_param == "" for i in graph.graph.input for d in i.type.tensor_type.shape.dim)
    outputs = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in graph.graph.output}
    assert outputs[contract.LOSS] == [1] and outputs[contract.IMAGE_GRAD] == [1, 3, 48, 64]


def test_threads_default_to_one_per_core():
    assert '"INFERENCE_NUM_THREADS": "3"' in openvino.provider_options(3)["load_config"]
    cores = len(__import__("os").sched_getaffinity(0))
    assert f'"INFERENCE_NUM_THREADS": "{cores}"' in openvino.provider_options(0)["load_config"]
    assert '"INFERENCE_PRECISION_HINT": "bf16"' in openvino.provider_options(0)["load_config"]


# --- numbers: with onnxruntime-openvino on a bf16 CPU --------------------------------------------


@needs_openvino
@needs_bf16
@pytest.mark.parametrize(("height", "width"), [(64, 80), (45, 58)])
def test_loss_and_gradient_are_float32_within_bf16_rounding(tiny, height, width):
    _, model, _ = tiny
    spec = LossSpec(style_weight=1e5)  # random weights give small Grams; see test_graph.py
    frozen, image = frozen_values(model, spec, height, width, seed=height)
    desired_terms, desired = GraphBackend(
        GradientSession(model, spec, "cpu"), frozen, image.shape
    ).value_and_grad(image)
    session = openvino.CompiledSession(model, spec, height, width, threads=0)
    terms, actual = session.objective(frozen).value_and_grad(image)

    assert terms[contract.LOSS] == pytest.approx(desired_terms[contract.LOSS], rel=LOSS_RTOL)
    difference = np.linalg.norm(actual - desired) / np.linalg.norm(desired)
    cosine = float(np.sum(actual * desired) / np.linalg.norm(actual) / np.linalg.norm(desired))
    assert difference <= GRADIENT_RTOL
    assert cosine >= GRADIENT_COSINE
    assert difference > 1e-5, "no bf16 rounding: the provider ran float32"


@needs_openvino
def test_the_provider_compiles_the_graph_whole(tiny, tmp_path):
    """No node left to the CPU provider: each would split the graph into pieces (without_scalars)."""
    _, model, _ = tiny
    spec = LossSpec()
    frozen, image = frozen_values(model, spec, 48, 64)
    session = openvino.CompiledSession(model, spec, 48, 64, threads=0)
    options = runtime.session_options(0)
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "profile")
    session.session = runtime.ort.InferenceSession(
        openvino.static_graph(model, spec, 48, 64).SerializeToString(),
        options,
        providers=[(openvino.PROVIDER, openvino.provider_options(0)), "CPUExecutionProvider"],
    )
    session.objective(frozen).value_and_grad(image)
    events = json.loads(Path(session.session.end_profiling()).read_text())
    providers = {e["args"]["provider"] for e in events if e.get("cat") == "Node" and "provider" in e["args"]}
    assert providers == {openvino.PROVIDER}


@needs_openvino
@needs_bf16
def test_one_compiled_session_per_size(tiny):
    """A pass at the size of the last reuses its session; another size compiles anew, and
    replaces it (a compiled session holds buffers for its size)."""
    _, model, info = tiny
    engine = Engine(tiny[0], "cpu", backend="openvino-bf16")
    spec = LossSpec()
    sizes = [(48, 64), (48, 64), (40, 64), (48, 64)]
    built = [
        engine.gradient.prepare(spec, frozen_values(model, spec, h, w, seed=i)[0], h, w).built
        for i, (h, w) in enumerate(sizes)
    ]
    assert built == [True, False, True, True]


@needs_openvino
@needs_bf16
@pytest.mark.parametrize("optimizer", [Optimizer.LBFGS, Optimizer.ADAM])
def test_both_optimisers_lower_the_loss(tiny, optimizer):
    _, model, _ = tiny
    engine = Engine(tiny[0], "cpu", backend="openvino-bf16")
    # The plain TV, as in test_openvino_runtime.py's twin of this test: from noise, 15 Adam steps
    # against the default colour TV on this random network swing by 4x before they settle.
    spec = LossSpec(style_weight=1e5, tv_chroma=1.0)
    rng = np.random.default_rng(0)
    content, style = rng.random((2, 48, 64, 3), dtype=np.float32)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (48, 64))
    start = rng.random((1, 3, 48, 64), dtype=np.float32)
    result, info = engine.optimize(spec, targets, start, optimizer, 15, 0.02)
    losses = [record.terms[contract.LOSS] for record in result.records]
    assert result.status.value == "done" and len(losses) == 15
    assert min(losses) < 0.5 * losses[0]
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


@needs_openvino
@needs_bf16  # the engine refuses openvino-bf16 on a CPU without it
def test_the_precise_twin_is_the_float32_objective(tiny):
    """What L-BFGS finishes on (nst_ort.loop.PRECISE_BELOW): ort-graph's float32 numbers exactly."""
    _, model, _ = tiny
    spec = LossSpec(style_weight=1e5)
    frozen, image = frozen_values(model, spec, 48, 64)
    engine = Engine(tiny[0], "cpu", backend="openvino-bf16")
    twin = engine.gradient.prepare(spec, frozen, 48, 64).objective.precise
    terms, grad = twin.value_and_grad(image)
    desired_terms, desired = GraphBackend(
        GradientSession(model, spec, "cpu"), frozen, image.shape
    ).value_and_grad(image)
    assert terms == desired_terms
    np.testing.assert_array_equal(grad, desired)
