"""The Node driver (examples/node, onnxruntime-node): the Python driver's image from the same bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nst_ort.bundle import driver
from tests.bundle.conftest import ITERATIONS, pixels, training_bundle_stub

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "examples" / "node"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "onnxruntime-node").is_dir(),
    reason=f"the JavaScript driver of ort-graph bundles needs Node >= 20 and `npm ci` in {NODE_DIR}",
)


def _node(*args) -> subprocess.CompletedProcess:
    command = [NODE, str(NODE_DIR / "run-bundle.mjs"), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_node_driver_agrees_with_the_python_driver(graph_bundle, tmp_path):
    """The bar: 8 steps within 1e-4 of the Python driver, each with its default threads."""
    output, raw = tmp_path / "node.png", tmp_path / "node.npy"
    done = _node(graph_bundle, "-o", output, "--raw", raw)
    assert done.returncode == 0, done.stderr
    steps = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    assert len(steps) == ITERATIONS and steps[0].startswith(f"step 1/{ITERATIONS} loss ")
    assert done.stdout.startswith(f"done: {output}; {ITERATIONS} steps, median ")

    reference = driver.run_bundle(graph_bundle)
    assert reference.status == "done" and len(reference.losses) == ITERATIONS
    actual = np.load(raw)
    initial = pixels(graph_bundle / "initial.png")
    assert np.abs(np.round(actual[0].transpose(1, 2, 0) * 255) - initial).mean() > 5  # both moved far
    # Native ONNX Runtime on both sides (1.30 in Node, the Python environment's here): measured
    # 0.0 apart, the same CPU kernels. Different kernels would sum in other orders, which Adam's
    # normalised step carries into the pixels; 1e-4 is the bar.
    assert np.abs(actual - reference.nchw).max() <= 1e-4
    assert np.abs(pixels(output) - pixels_of(reference.image)).max() <= 1


def pixels_of(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.int32)


def test_node_driver_writes_no_file_for_bad_input(graph_bundle, tmp_path):
    """Bad input: one line on stderr, exit status 2, nothing written."""
    output = tmp_path / "out.png"
    damaged = tmp_path / "damaged"
    shutil.copytree(graph_bundle, damaged)
    with (damaged / "inputs.bin").open("r+b") as file:
        file.truncate(1000)
    other = tmp_path / "other"
    shutil.copytree(graph_bundle, other, ignore=shutil.ignore_patterns("*.onnx", "*.bin", "*.png"))
    manifest = json.loads((other / "bundle.json").read_text())
    (other / "bundle.json").write_text(json.dumps({**manifest, "version": 3}))
    cases = [
        ((tmp_path / "nowhere", "-o", output), f"{tmp_path / 'nowhere'}: no such folder"),
        ((tmp_path, "-o", output), f"{tmp_path}: not a bundle (no bundle.json)"),
        (
            (graph_bundle, "-o", tmp_path / "out.jpg"),
            f"{tmp_path / 'out.jpg'}: the output is written as .png",
        ),
        (
            (graph_bundle, "-o", output, "--iterations", "2.5"),
            "--iterations 2.5: expected a whole number >= 0",
        ),
        ((graph_bundle, "-o", tmp_path / "no" / "out.png"), f"{tmp_path / 'no'}: no such folder"),
        ((other, "-o", output), f"{other / 'bundle.json'}: bundle version 3, this driver reads version 2"),
        (
            (damaged, "-o", output),
            f"{damaged / 'inputs.bin'}: damaged (input content.relu4_2.target does not fit)",
        ),
    ]
    for args, message in cases:
        done = _node(*args)
        assert (done.returncode, done.stderr) == (2, f"error: {message}\n"), args
    bundle = training_bundle_stub(tmp_path / "training")
    done = _node(bundle, "-o", output)  # a training bundle: which driver runs it
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {bundle / 'bundle.json'}: bundle version 1 (onnxruntime-training ")
    assert len(done.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "other", "training"]


@pytest.mark.parametrize("sigma", [0.5, 1.3])
def test_style_blur_in_javascript_is_the_engines(sigma):
    """nst-bundle.mjs's gaussianBlur, which the page applies to a picked painting, against
    scipy's gaussian_filter as targets.style_for_run calls it, on an odd-sized image."""
    from scipy import ndimage

    image = np.random.default_rng(3).random((13, 10, 3), dtype=np.float32)
    desired = ndimage.gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")
    module = (ROOT / "examples" / "web" / "nst-bundle.mjs").as_uri()
    script = (
        "import { readFileSync } from 'node:fs';"
        f"const {{ gaussianBlur }} = await import({json.dumps(module)});"
        "const input = JSON.parse(readFileSync(0, 'utf8'));"
        "const out = gaussianBlur(Float32Array.from(input.data), input.shape, input.sigma);"
        "process.stdout.write(JSON.stringify(Array.from(out)));"
    )
    nchw = image.transpose(2, 0, 1)[None]
    feed = json.dumps({"data": nchw.ravel().tolist(), "shape": list(nchw.shape), "sigma": sigma})
    command = [NODE, "--input-type=module", "-e", script]
    done = subprocess.run(command, input=feed, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    actual = np.asarray(json.loads(done.stdout), np.float32).reshape(nchw.shape)[0].transpose(1, 2, 0)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=1e-6)
