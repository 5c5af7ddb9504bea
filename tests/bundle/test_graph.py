"""The ort-graph bundle (version 2): what make_bundle writes, and the Python driver that runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from nst_ort import contract
from nst_ort.bundle import driver, make_bundle
from nst_ort.bundle.graph import FILES
from nst_ort.bundle.write import INITIAL_IMAGE
from nst_ort.imageio import load_image, resize, to_nchw
from nst_ort.loop import ADAM_BETAS, ADAM_EPS, run_adam
from tests.bundle.conftest import ITERATIONS, LR, pixels, training_bundle_stub
from tests.bundle.test_driver import HIDDEN_RUN
from tests.bundle.test_write import engine_targets

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "nst_ort" / "bundle" / "driver.py"


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "bundle.json").read_text())


def _initial(bundle: Path) -> np.ndarray:
    return to_nchw(pixels(bundle / INITIAL_IMAGE).astype(np.float32) / 255.0)


def test_graph_bundle_holds_the_contract(graph_bundle):
    manifest = _manifest(graph_bundle)
    files = {**FILES, "initial_image": INITIAL_IMAGE}
    assert sorted(p.name for p in graph_bundle.iterdir()) == sorted([*files.values(), "bundle.json"])
    assert (manifest["format"], manifest["version"], manifest["backend"]) == (
        "nst-ort-bundle",
        2,
        "ort-graph",
    )
    assert manifest["files"] == files
    assert manifest["image"]["shape"] == [1, 3, 51, 64]  # the 80x64 content at a longest side of 64

    # The model's inputs are bundle.json's, with every shape fixed; only the image has no value.
    model = onnx.load(str(graph_bundle / FILES["model"]))
    declared = {entry["name"]: entry for entry in manifest["model"]["inputs"]}
    actual = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert actual == {name: entry["shape"] for name, entry in declared.items()}
    assert declared[contract.IMAGE]["role"] == "image" and "offset" not in declared[contract.IMAGE]
    roles = {entry["role"] for name, entry in declared.items() if name != contract.IMAGE}
    assert roles == {"target", "weight"}
    lengths = [entry["length"] for entry in declared.values() if "length" in entry]
    assert (graph_bundle / FILES["inputs"]).stat().st_size == 4 * sum(lengths)

    # Forward operators only, from the standard domain: any ONNX Runtime runs it.
    assert {node.domain for node in model.graph.node} <= {""}
    assert set(manifest["model"]["operators"]) == {node.op_type for node in model.graph.node}
    outputs = {o.name for o in model.graph.output}
    assert set(manifest["model"]["outputs"]["terms"]) == set(contract.TERMS)
    assert manifest["model"]["outputs"]["gradient"] == contract.IMAGE_GRAD
    targets = manifest["model"]["targets"]
    assert outputs == {*contract.TERMS, contract.IMAGE_GRAD, *(t["output"] for t in targets)}
    assert {t["input"] for t in targets} == {n for n, e in declared.items() if e["role"] == "target"}

    optimizer = manifest["optimizer"]
    assert (optimizer["name"], optimizer["learning_rate"], optimizer["iterations"]) == (
        "adam",
        LR,
        ITERATIONS,
    )
    assert (optimizer["betas"], optimizer["eps"], optimizer["clip"]) == (list(ADAM_BETAS), 1e-8, [0.0, 1.0])


@pytest.fixture(scope="module", params=list(contract.StyleLoss), ids=lambda kind: kind.value)
def kind_bundle(request, graph_bundle, inputs, graph_config, page_config, graph_engine, tmp_path_factory):
    """The graph bundle with each kind of style term, and the config it was written with (the
    Gram one is the page's, without the style blur; the sliced one has it)."""
    if request.param is contract.StyleLoss.GRAM:
        return graph_bundle, page_config
    config = replace(graph_config, loss=replace(graph_config.loss, style_loss=request.param))
    folder = tmp_path_factory.mktemp("sliced-bundle") / "tiny"
    content, style = inputs
    make_bundle(content, [style], folder, config, graph_engine)
    return folder, config


def test_inputs_hold_the_engine_targets_and_weights(kind_bundle, inputs, graph_engine):
    graph_bundle, graph_config = kind_bundle
    desired = dict(engine_targets(inputs, graph_config, graph_engine).frozen)
    actual = driver.read_inputs(driver.load_bundle(graph_bundle))
    assert sorted(actual) == sorted(desired)
    for name, value in desired.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


def _run_model(bundle: Path, image: np.ndarray, outputs: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    loaded = driver.load_bundle(bundle)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(loaded.path("model")), options, providers=["CPUExecutionProvider"])
    feeds = {**driver.read_inputs(loaded), contract.IMAGE: image}
    return dict(zip(outputs, session.run(outputs, feeds), strict=True))


def test_model_gives_the_engine_loss_and_gradient(kind_bundle, inputs, graph_engine):
    """One evaluation, the same numbers as `nst-ort stylize`'s ort-graph backend (no loop, so
    nothing a step could amplify)."""
    graph_bundle, graph_config = kind_bundle
    image = _initial(graph_bundle)
    actual = _run_model(graph_bundle, image, [*contract.TERMS, contract.IMAGE_GRAD])
    targets = engine_targets(inputs, graph_config, graph_engine)
    prepared = graph_engine.gradient.prepare(graph_config.loss, targets.frozen, *image.shape[2:])
    terms, grad = prepared.objective.value_and_grad(image)
    for name in contract.TERMS:
        assert actual[name] == pytest.approx(terms[name], rel=1e-5, abs=1e-6), name
    np.testing.assert_allclose(actual[contract.IMAGE_GRAD], grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max())


def test_model_outputs_the_targets_of_its_input_image(kind_bundle, inputs, graph_engine):
    """Run on the photo (and on the painting) instead of the image, the model gives their targets:
    what the page does with the user's own pictures (the sliced term's quantiles along the
    directions the bundle holds)."""
    graph_bundle, graph_config = kind_bundle
    manifest = _manifest(graph_bundle)
    content, style = inputs
    height, width = manifest["image"]["shape"][2:]
    photo = to_nchw(resize(load_image(content), height, width))
    painting = to_nchw(resize(load_image(style), height, width))
    # The painting as decoded, as the page computes it: without the style blur.
    desired = engine_targets(inputs, replace(graph_config, style_blur=0.0), graph_engine).values
    for role, image in (("content", photo), ("style", painting)):
        pairs = [t for t in manifest["model"]["targets"] if t["image"] == role]
        actual = _run_model(graph_bundle, image, [t["output"] for t in pairs])
        for t in pairs:  # (the engine scales the 80x64 painting to 64x51 too)
            np.testing.assert_allclose(actual[t["output"]], desired[t["input"]], rtol=1e-5, atol=1e-6)


def test_driver_adam_is_the_engine_adam():
    """The driver's written-out Adam gives the bits of the engine's (loop.run_adam, numpy 2)."""
    rng = np.random.default_rng(0)
    shape = (1, 3, 5, 7)
    x0 = rng.uniform(0, 1, shape).astype(np.float32)
    gradients = [rng.normal(0, 10.0**-k, shape).astype(np.float32) for k in range(5)]

    class Fixed:  # the gradients above, in turn
        def __init__(self):
            self._grads = iter(gradients)

        def value_and_grad(self, image):
            return dict.fromkeys(contract.TERMS, 0.0), next(self._grads)

    seen = []
    run_adam(Fixed(), x0, len(gradients), LR, callback=lambda record, image: seen.append(image))
    adam, x = driver.Adam(LR, list(ADAM_BETAS), ADAM_EPS), x0.copy()
    for grad, engine_image in zip(gradients, seen, strict=True):
        adam.step(x, grad)
        np.clip(x, 0.0, 1.0, out=x)
        np.testing.assert_array_equal(x, engine_image)


def _run_hidden(bundle: Path, output: Path, hidden: set[str], *args: str) -> subprocess.CompletedProcess:
    code = HIDDEN_RUN.format(hidden=hidden)
    command = [sys.executable, "-c", code, str(DRIVER), str(bundle), "-o", str(output), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=output.parent)


def test_python_driver_runs_on_any_onnxruntime_and_steps_as_the_engine(
    graph_bundle, inputs, graph_config, graph_engine, tmp_path
):
    """Standalone, without torch, scipy, nst_ort or onnxruntime's training API, the driver runs
    the bundle's 8 steps. That they are the engine's steps is tested in parts that are stable:
    one evaluation gives the engine's terms and gradient (above) and the driver's Adam gives the
    engine's bits for the same gradients (test_driver_adam_is_the_engine_adam). Whole runs are
    not compared: the fixed-shape graph picks other kernels, whose last bits differ, and Adam's
    normalised step carries that into a pixel whose gradient nearly cancels (1.9e-4 after one
    step here)."""
    output, raw = tmp_path / "out.png", tmp_path / "out.npy"
    hidden = {"torch", "scipy", "nst_ort", "onnxruntime.training"}
    done = _run_hidden(graph_bundle, output, hidden, "--threads", "1", "--raw", str(raw))
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    assert len(steps) == ITERATIONS and steps[-1].startswith(f"step {ITERATIONS}/{ITERATIONS} loss ")
    assert done.stdout.startswith(f"done: {output}; {ITERATIONS} steps, median ")
    actual = np.load(raw)
    assert actual.shape == (1, 3, 51, 64) and pixels(output).shape == (51, 64, 3)
    initial = _initial(graph_bundle)
    assert np.abs(actual - initial).mean() > 5 / 255  # eight steps of 0.02 move pixels far


def test_python_driver_says_what_is_wrong(graph_bundle, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(graph_bundle, damaged)
    with (damaged / FILES["inputs"]).open("r+b") as file:
        file.truncate(1000)
    with pytest.raises(
        driver.BundleError, match=r"inputs.bin: damaged \(input content.relu4_2.target does not fit\)"
    ):
        driver.load_bundle(damaged)
    # A training bundle where onnxruntime has no training API: one line, exit status 2.
    bundle = training_bundle_stub(tmp_path / "training")
    done = _run_hidden(bundle, tmp_path / "out.png", {"onnxruntime.training", "torch"})
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: {bundle}: a version 1 bundle (--backend ort-training) needs onnxruntime-training 1.19.2; "
        "write it again with --backend ort-graph to run it on any onnxruntime"
    )
    assert not (tmp_path / "out.png").exists()
