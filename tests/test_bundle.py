"""Bundles: what `nst-ort bundle` writes, and the Python and JavaScript drivers that run it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from nst_ort import bundle_driver, contract
from nst_ort.bundle import FILES, make_bundle
from nst_ort.cli import main
from nst_ort.config import Device, Optimizer, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.graphs import weight_values
from nst_ort.imageio import fit_longest, from_nchw, load_image, resize, to_nchw, to_uint8

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "nst_ort" / "bundle_driver.py"
JS_DIR = ROOT / "examples" / "javascript"
ITERATIONS = 8
LR = 0.02

# Runs a script as if the named top-level packages were not installed: every import finder
# answers "not found" for them, so `import torch` fails and importlib.util.find_spec("torch") is
# None (onnxruntime.training probes for torch that way and imports it when found).
HIDDEN_RUN = """
import runpy, sys
class Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {hidden!r}:
            return None
        find = getattr(self.finder, "find_spec", None)
        return find(name, path, target) if find else None
    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)
sys.meta_path[:] = [Hide(finder) for finder in sys.meta_path]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    y, x = np.mgrid[0:64, 0:80].astype(np.float32)
    content = np.stack([x / 80, y / 64, 0.5 + 0.5 * np.sin((x + y) / 7)], axis=2)
    style = np.stack([0.5 + 0.5 * np.sin(x / 3), 0.5 + 0.5 * np.cos(y / 4), (x * y) % 17 / 17], axis=2)
    paths = folder / "content.png", folder / "style.png"
    for path, image in zip(paths, (content, style), strict=True):
        Image.fromarray(to_uint8(image)).save(path)
    return paths


@pytest.fixture(scope="module")
def engine(tiny_model) -> Engine:
    return Engine(tiny_model, "cpu", threads=1)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return _write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def config(tiny_model) -> StylizeConfig:
    return StylizeConfig(
        model=tiny_model, size=64, iterations=ITERATIONS, lr=LR, device=Device.CPU, threads=1
    )


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, inputs, config, engine) -> Path:
    directory = tmp_path_factory.mktemp("bundles") / "tiny"
    content, style = inputs
    make_bundle(content, [style], directory, config, engine)
    return directory


def _run_python_driver(bundle: Path, output: Path, *args: str) -> subprocess.CompletedProcess:
    """The reference driver as a standalone script, in a process where torch, scipy and nst_ort
    cannot be imported: it needs only onnxruntime-training, numpy and Pillow."""
    code = HIDDEN_RUN.format(hidden={"torch", "scipy", "nst_ort"})
    command = [sys.executable, "-c", code, str(DRIVER), str(bundle), "-o", str(output), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=output.parent)


@pytest.fixture(scope="module")
def python_output(tmp_path_factory, bundle) -> Path:
    output = tmp_path_factory.mktemp("python") / "out.png"
    done = _run_python_driver(bundle, output, "--threads", "1")
    assert done.returncode == 0, done.stderr
    return output


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image).astype(np.int32)


def test_bundle_holds_the_contract_files(bundle):
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert sorted(p.name for p in bundle.iterdir()) == sorted([*FILES.values(), "bundle.json"])
    assert manifest["format"] == "nst-ort-bundle" and manifest["version"] == 1
    assert manifest["files"] == FILES
    # The 80x64 content fits a longest side of 64.
    assert manifest["image"]["shape"] == [1, 3, 51, 64]
    assert manifest["image"]["range"] == [0.0, 1.0]
    assert manifest["training_model"]["inputs"] == []
    assert [o["name"] for o in manifest["training_model"]["outputs"]] == [
        contract.LOSS,
        contract.LOSS_CONTENT,
        contract.LOSS_STYLE,
        contract.LOSS_TV,
    ]
    optimizer = manifest["optimizer"]
    assert (optimizer["name"], optimizer["learning_rate"], optimizer["iterations"]) == (
        "adam",
        LR,
        ITERATIONS,
    )
    assert optimizer["betas"] == [0.9, 0.999] and optimizer["eps"] == 1e-8
    assert manifest["parameters"]["trainable"] == [contract.IMAGE]
    assert _pixels(bundle / "initial.png").shape == (51, 64, 3)


def test_optimizer_model_has_the_learning_rate_fixed(bundle):
    graph = onnx.load(str(bundle / FILES["optimizer_model"])).graph
    adam = next(node for node in graph.node if node.op_type == "AdamWOptimizer")
    constant = next(node for node in graph.node if node.output[0] == adam.input[0])
    actual = onnx.numpy_helper.to_array(constant.attribute[0].t)
    np.testing.assert_array_equal(actual, np.array([LR], np.float32))
    # ONNX Runtime checks the optimizer model's input names, so the unused input stays.
    assert [i.name for i in graph.input][0] == "learning_rate"


def _engine_targets(inputs, config, engine):
    """The targets `nst-ort stylize` computes for the same images and size."""
    content, style = inputs
    image = load_image(content)
    height, width = fit_longest(*image.shape[:2], config.size)
    return engine.targets(
        config.loss, resize(image, height, width), [load_image(style)], [1.0], 1.0, (height, width)
    )


def test_checkpoint_holds_the_targets_weights_and_initial_image(bundle, inputs, config, engine):
    from onnxruntime.training import api

    desired = {**_engine_targets(inputs, config, engine).values, **weight_values(config.loss)}
    desired[contract.IMAGE] = to_nchw(_pixels(bundle / "initial.png").astype(np.float32) / 255.0)
    state = api.CheckpointState.load_checkpoint(str(bundle / FILES["checkpoint"]))
    api.Module(str(bundle / FILES["training_model"]), state, device="cpu")  # gives parameters buffers
    assert sorted(name for name, _ in state.parameters) == sorted(desired)
    for name, value in desired.items():
        np.testing.assert_array_equal(state.parameters[name].data, value, err_msg=name)


def test_python_driver_runs_without_torch_and_matches_the_engine(
    python_output, bundle, inputs, config, engine
):
    """The bundle's loop is the library's Adam: same targets, learning rate, steps and clip."""
    initial = _pixels(bundle / "initial.png")
    actual = _pixels(python_output)
    assert actual.shape == initial.shape
    assert np.abs(actual - initial).mean() > 5  # eight steps of 0.02 move pixels by up to 40 levels

    init = to_nchw(initial.astype(np.float32) / 255.0)
    targets = _engine_targets(inputs, config, engine)
    result, _ = engine.optimize(config.loss, targets, init, Optimizer.ADAM, ITERATIONS, LR)
    assert result.status == "done"
    desired = to_uint8(from_nchw(result.image)).astype(np.int32)
    # Same native kernels, one thread each: the floats agree to rounding, so only a value lying
    # within that rounding of a half level may land one level apart.
    difference = np.abs(actual - desired)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


def test_run_bundle_command_writes_the_image(bundle, tmp_path, capsys):
    output = tmp_path / "cli.png"
    main_args = ["run-bundle", str(bundle), "-o", str(output), "--iterations", "1", "--threads", "1"]
    _run_main(main_args)
    assert _pixels(output).shape == (51, 64, 3)
    assert "done:" in capsys.readouterr().out


def _run_main(args: list[str]) -> int:
    saved = sys.argv
    sys.argv = ["nst-ort", *args]
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = saved
    return 0


def test_run_bundle_rejects_a_folder_without_bundle_json(tmp_path, capsys):
    code = _run_main(["run-bundle", str(tmp_path), "-o", str(tmp_path / "out.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: {tmp_path}: not a bundle (no bundle.json); write one with `nst-ort bundle`"
    assert not (tmp_path / "out.png").exists()


def test_driver_rejects_another_bundle_version(bundle, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / "bundle.json").read_text())
    manifest["version"] = 99
    (copy / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(bundle_driver.BundleError, match="bundle version 99, this driver reads version 1"):
        bundle_driver.load_bundle(copy)
    (copy / "bundle.json").write_text(json.dumps({**manifest, "version": 1}))
    (copy / FILES["checkpoint"]).unlink()
    with pytest.raises(bundle_driver.BundleError, match="checkpoint: missing from the bundle"):
        bundle_driver.load_bundle(copy)


def test_bundle_refuses_a_non_empty_folder(tiny_model, inputs, tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    content, style = inputs
    args = ["bundle", str(content), str(style), "--model", str(tiny_model), "--size", "64", "-o", str(target)]
    code = _run_main(args)
    assert code == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {target}: folder exists and is not empty; choose a new folder"
    )
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # no temporary folder left behind


NODE = shutil.which("node")
requires_node = pytest.mark.skipif(
    NODE is None or not (JS_DIR / "node_modules" / "onnxruntime-web").is_dir(),
    reason=f"the JavaScript driver needs Node >= 20 and its packages: run `npm ci` in {JS_DIR}",
)


@requires_node
def test_javascript_driver_agrees_with_the_python_driver(bundle, python_output, tmp_path):
    output = tmp_path / "js.png"
    command = [NODE, str(JS_DIR / "run-bundle.mjs"), str(bundle), "-o", str(output), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    initial, desired, actual = (_pixels(p) for p in (bundle / "initial.png", python_output, output))
    assert actual.shape == desired.shape
    # Both moved far from the start, so agreeing means something.
    assert np.abs(actual - initial).mean() > 5
    # WebAssembly and native x86 kernels sum in different orders. Measured on this bundle, the
    # float images after 8 steps differ by at most 1.1e-6 (mean 4e-8), so rounding to 8 bits may
    # put a value lying that close to a half level one level apart. The difference grows with the
    # steps (0.0055 after 20: Adam's normalised step amplifies it where a gradient is near zero),
    # which is why the test compares few steps.
    difference = np.abs(actual - desired)
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01


@requires_node
def test_javascript_driver_rejects_a_folder_without_bundle_json(tmp_path):
    command = [NODE, str(JS_DIR / "run-bundle.mjs"), str(tmp_path), "-o", str(tmp_path / "out.png")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path}: not a bundle (no bundle.json)"
    assert not (tmp_path / "out.png").exists()
