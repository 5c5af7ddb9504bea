"""`nst-ort stylize` end to end in subprocesses: outputs, reports, messages, exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

CLI = [sys.executable, "-c", "from nst_ort.cli import main; main()"]

# Makes `import torch` fail and find_spec("torch") answer None, as where torch was never installed.
NO_TORCH = "import sys\nsys.modules['torch'] = None\n"


def run(*args, prelude=""):
    code = prelude + "from nst_ort.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)


def test_stylize_end_to_end_without_torch(tiny_model, make_image, tmp_path):
    content, style = make_image("c.png", 60, 90, seed=1), make_image("s.jpg", 50, 50, seed=2)
    out, report = tmp_path / "out.png", tmp_path / "run.json"
    result = run(
        "stylize",
        content,
        style,
        "-o",
        out,
        "--model",
        tiny_model,
        "--size",
        64,
        "--iterations",
        4,
        "--report",
        report,
        "--save-every",
        2,
        "--threads",
        2,
        prelude=NO_TORCH,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with Image.open(out) as image:
        assert image.size == (64, 43) and image.mode == "RGB"
    assert (tmp_path / "out_00002.png").is_file() and (tmp_path / "out_00004.png").is_file()
    data = json.loads(report.read_text())
    assert data["status"] == "done" and data["device"] == "cpu"
    assert data["config"]["iterations"] == 4 and data["config"]["loss"]["style_weight"] == 1e4
    assert data["model"]["weights"] == "random:0"
    assert [it["step"] for it in data["iterations"]] == [1, 2, 3, 4]
    assert data["iterations"][-1]["loss"] == data["final"]["loss"]
    assert data["passes"][0]["artifacts_built"] in (True, False)
    assert "onnxruntime-training-cpu" in data["versions"]
    assert "done:" in result.stdout and str(out) in result.stdout.replace("\n", "")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_no_nst_ort_module_imports_torch():
    code = (
        "import sys, pkgutil, importlib, nst_ort\n"
        "for m in pkgutil.iter_modules(nst_ort.__path__): importlib.import_module('nst_ort.' + m.name)\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_export_without_torch_names_the_extra(tmp_path):
    result = run("export", "--weights", "random", "-o", tmp_path / "m.onnx", prelude=NO_TORCH)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: nst-ort export needs torch: pip install 'nst-ort[export]'"


def test_missing_onnxruntime_names_the_extras(tiny_model, make_image, tmp_path):
    blocker = NO_TORCH.replace("'torch'", "'onnxruntime'")
    result = run(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        tmp_path / "o.png",
        "--model",
        tiny_model,
        prelude=blocker,
    )
    assert result.returncode == 2
    assert "pip install 'nst-ort[cpu]'" in result.stderr and "Traceback" not in result.stderr


def test_output_that_is_an_input_is_refused(tiny_model, make_image):
    content = make_image()
    before = content.read_bytes()
    result = run("stylize", content, make_image("s.png"), "-o", content, "--model", tiny_model)
    assert result.returncode == 2
    assert "is one of the inputs" in result.stderr
    assert content.read_bytes() == before


def test_cuda_without_the_cuda_build_is_one_line(tiny_model, make_image, tmp_path):
    result = run(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        tmp_path / "o.png",
        "--model",
        tiny_model,
        "--device",
        "cuda",
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --device cuda: this onnxruntime has no CUDA")


def test_layer_the_model_lacks_lists_what_it_has(tiny_model, make_image, tmp_path):
    result = run(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        tmp_path / "o.png",
        "--model",
        tiny_model,
        "--style-layers",
        "relu3_3",
    )
    assert result.returncode == 2
    assert (
        "unknown style layer 'relu3_3'; available: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1"
        in result.stderr
    )
    assert not (tmp_path / "o.png").exists()


def test_missing_default_model_says_how_to_get_one(make_image, tmp_path, monkeypatch):
    monkeypatch.setenv("NST_ORT_CACHE", str(tmp_path / "empty-cache"))
    result = run("stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png")
    assert result.returncode == 2
    assert "no such model file; run `nst-ort export` first" in result.stderr


def test_adam_with_several_styles_and_blend(tiny_model, make_image, tmp_path):
    out = tmp_path / "o.jpg"
    result = run(
        "stylize",
        make_image(),
        make_image("a.png", seed=3),
        make_image("b.png", seed=4),
        "-o",
        out,
        "--model",
        tiny_model,
        "--size",
        48,
        "--iterations",
        3,
        "--optimizer",
        "adam",
        "--style-blend",
        "1,3",
        "--init",
        "content",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (38, 48, 3)
    bad = run(
        "stylize", make_image(), make_image("a.png"), "-o", out, "--model", tiny_model, "--style-blend", "1,2"
    )
    assert bad.returncode == 2 and "--style-blend has 2 weights for 1 style images" in bad.stderr


def _help(command: str) -> str:
    result = subprocess.run(
        [*CLI, command, "--help"], capture_output=True, text=True, env={"COLUMNS": "200", "PATH": ""}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_explains_the_options():
    actual = _help("stylize")
    for option in (
        "--style-weight",
        "--content-layers",
        "--style-scale",
        "--save-every",
        "--report",
        "--device",
    ):
        assert option in actual
    assert "Stylise CONTENT with STYLES" in actual


@pytest.mark.parametrize("command", ["stylize", "bundle"])
def test_help_shows_defaults_written_in_words(command):
    # Rich would read "[default: …]" in a help text as markup and drop it.
    actual = _help(command)
    assert "(default: the user cache's default model)" in actual
    assert "(default: the paper's five, 0.2 each)" in actual
