"""`nst-ort stylize` and `nst-ort resume`: outputs, reports, messages, exit codes."""

import json
import signal
import time

import numpy as np
import pytest
from PIL import Image

from nst_ort import contract
from nst_ort.backends import ort
from nst_ort.config import StylizeConfig
from nst_ort.imageio import load_image


def test_stylize_end_to_end_without_torch(tiny_model, make_image, tmp_path, cli_process):
    content, style = make_image("c.png", 60, 90, seed=1), make_image("s.jpg", 50, 50, seed=2)
    out, report = tmp_path / "out.png", tmp_path / "run.json"
    result = cli_process(
        "stylize", content, style, "-o", out, "--model", tiny_model, "--size", 64, "--iterations", 4,
        "--report", report, "--save-every", 2, "--threads", 2,
        hide=("torch",),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with Image.open(out) as image:
        assert image.size == (64, 43) and image.mode == "RGB"
    assert (tmp_path / "out_00002.png").is_file() and (tmp_path / "out_00004.png").is_file()
    data = json.loads(report.read_text())
    assert data["status"] == "done" and data["device"] == "cpu"
    assert data["config"]["iterations"] == 4
    assert data["config"]["loss"]["style_weight"] == StylizeConfig().loss.style_weight
    assert data["model"]["weights"] == "random:0"
    assert [it["step"] for it in data["iterations"]] == [1, 2, 3, 4]
    assert data["iterations"][-1]["loss"] == data["final"]["loss"]
    assert data["passes"][0]["artifacts_built"] in (True, False)
    assert ort.package_name() in data["versions"]
    assert "done:" in result.stdout and str(out) in result.stdout.replace("\n", "")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_onnxruntime_names_the_extras(tiny_model, make_image, tmp_path, cli_process):
    result = cli_process(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        hide=("torch", "onnxruntime"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "pip install 'nst-ort[cpu]'" in result.stderr and "Traceback" not in result.stderr


def test_output_that_is_an_input_is_refused(tiny_model, make_image, cli):
    content = make_image()
    before = content.read_bytes()
    result = cli("stylize", content, make_image("s.png"), "-o", content, "--model", tiny_model)
    assert result.exit_code == 2
    assert "is one of the inputs" in result.error
    assert content.read_bytes() == before


def test_cuda_without_the_cuda_build_is_one_line(tiny_model, make_image, tmp_path, cli):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--device", "cuda",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.error.startswith("error: --device cuda: this onnxruntime has no CUDA")


def test_layer_the_model_lacks_lists_what_it_has(tiny_model, make_image, tmp_path, cli):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--style-layers", "relu5_4",
    )  # fmt: skip
    assert result.exit_code == 2
    available = ", ".join(contract.loss_layers(contract.Arch.VGG16))
    assert f"unknown style layer 'relu5_4'; available: {available}" in result.error
    assert "`nst-ort export` exports every layer of its network" in result.error  # what to do
    assert not (tmp_path / "o.png").exists()


def test_negative_layer_weight_is_one_line(tiny_model, make_image, tmp_path, cli):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--style-layers", "relu1_1:-1",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.error == ("error: style layer weight '-1' for relu1_1 must be a finite number, 0 or more")
    assert not (tmp_path / "o.png").exists()


def test_missing_default_model_says_how_to_get_one(make_image, tmp_path, monkeypatch, cli):
    monkeypatch.setenv("NST_ORT_CACHE", str(tmp_path / "empty-cache"))
    result = cli("stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert "no such model file; run `nst-ort export` first" in result.error


def test_adam_with_several_styles_and_blend(tiny_model, make_image, tmp_path, cli):
    out = tmp_path / "o.jpg"
    result = cli(
        "stylize", make_image(), make_image("a.png", seed=3), make_image("b.png", seed=4), "-o", out,
        "--model", tiny_model, "--size", 48, "--iterations", 3, "--optimizer", "adam",
        "--style-blend", "1,3", "--init", "content", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (38, 48, 3)
    bad = cli(
        "stylize", make_image(), make_image("a.png"), "-o", out, "--model", tiny_model, "--style-blend", "1,2"
    )
    assert bad.exit_code == 2 and "--style-blend has 2 weights for 1 style images" in bad.error


def _write(path, mode, size=(40, 30)):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((*size[::-1], 3)) * 255).astype(np.uint8)).convert(mode).save(path)
    return path


def _tiff_with_exif() -> bytes:
    import io

    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buffer, format="TIFF", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such file"),
        (lambda p: (p.mkdir(), p)[1], "is a directory"),
        (lambda p: (p.write_bytes(b""), p)[1], "not an image"),
        (lambda p: (p.write_text("hello"), p)[1], "not an image"),
        (lambda p: (Image.new("RGB", (1, 1)).save(p, format="PNG"), p)[1], "image is 1x1 px"),
        (lambda p: (p.write_bytes(_tiff_with_exif()[:12]), p)[1], "not an image"),  # Pillow warns too
    ],
)
def test_bad_image_files_are_one_line_naming_the_file(tmp_path, tiny_model, make_image, make, message, cli):
    bad = make(tmp_path / "bad.png")
    result = cli("stylize", bad, make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model)
    assert result.exit_code == 2
    assert str(bad) in result.error and message in result.error
    assert not (tmp_path / "o.png").exists()


def test_huge_sizes_are_refused_up_front(tiny_model, make_image, tmp_path, cli):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--size", 200000, "--iterations", 1,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "GiB of memory" in result.error and "the largest size that fits is about --size" in result.error


def test_overflowing_weights_exit_1_and_keep_the_image(tiny_model, make_image, tmp_path, cli):
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model, "--size", 32,
        "--iterations", 3, "--tv-weight", 1e38, "--no-normalize", "--report", report, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "stopped: the loss term became inf" in result.error and "last good image saved" in result.error
    assert "try a smaller --lr, smaller --style-weight, or other weights" in result.error
    assert out.is_file()
    assert json.loads(report.read_text())["status"] == "nonfinite"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scales", "64,32"), "error: --scales must increase, e.g. 256,512"),
        (("--size", 64, "--scales", "32,128"), "error: --scales 128 is larger than --size 64"),
        (("--scales", "8"), "error: --scales: every scale must be at least 16 px"),
        (
            ("--scales", "32", "--scale-iterations", "5"),
            "error: --scale-iterations has 1 counts for 2 passes",
        ),
        (("--scales", "a"), "error: --scales: expected comma-separated whole numbers, got 'a'"),
        (("--size", 8), "error: --size 8 is too small; at least 16 px"),
        (("--init", "nope"), "error: --init nope: not noise, content, style or an image file"),
        (("--backend", "nope"), "error: --backend nope: not one of auto, ort-graph, ort-training"),
        (("--tile", 8), "error: --tile 8: 0 (chosen from the memory) or at least 32 px"),
        (("--tile", -1), "error: --tile -1: 0 (chosen from the memory) or at least 32 px"),
        (("--style-blur", -1), "error: --style-blur -1.0: must be a finite number, 0 or more"),
        (("--tv-chroma", -2), "error: --tv-chroma -2.0: must be a finite number, 0 or more"),
        (("--size", 200000, "--tile", 100000), "error: --tile 100000 at 200000x160000 px needs about"),
    ],
)
def test_bad_options_name_the_option(tiny_model, make_image, tmp_path, cli, args, message):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model, *args
    )
    assert result.exit_code == 2
    assert result.error.startswith(message)
    assert not (tmp_path / "o.png").exists()


def test_a_pass_too_small_for_the_deepest_layers_names_the_option(tiny_model, make_image, tmp_path, cli):
    content, style = make_image("wide.png", 32, 80, seed=0), make_image("s.png", 32, 32, seed=1)
    result = cli(
        "stylize", content, style, "-o", tmp_path / "o.png", "--model", tiny_model, "--size", 80,
        "--scales", 20, "--iterations", 2,
    )  # fmt: skip
    assert result.error == (
        "error: --scales 20 makes a 20x8 image; the deepest layers need at least 16 px per side"
    )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/o.png", "no such folder"),
        ("o.xyz", "unknown image extension '.xyz'"),
        (".", "is a directory"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(tiny_model, make_image, tmp_path, output, message, cli):
    result = cli("stylize", make_image(), make_image("s.png"), "-o", tmp_path / output, "--model", tiny_model)
    assert result.exit_code == 2
    assert message in result.error


def test_cli_scales(tiny_model, make_image, tmp_path, cli):
    content, style = make_image("c.png", 40, 48, seed=0), make_image("s.png", 40, 40, seed=1)
    output, report = tmp_path / "out.png", tmp_path / "report.json"
    result = cli(
        "stylize", content, style, "-o", output, "--model", tiny_model, "--size", 48, "--scales", "24,48",
        "--scale-iterations", "4,2", "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "scale 1/2: 24 px" in result.stderr and "scale 2/2: 48 px" in result.stderr
    assert load_image(output).shape == (40, 48, 3)
    data = json.loads(report.read_text())
    assert [(p["height"], p["width"]) for p in data["passes"]] == [(20, 24), (40, 48)]
    assert data["config"]["scales"] == [24, 48]
    assert np.isfinite(data["final"]["loss"])


def test_cli_sliced_style_loss_reaches_the_loss_and_the_report(tiny_model, make_image, tmp_path, cli):
    """--style-loss sliced reaches the loss and the report (which a resume reads); the picture differs from
    the Gram term's from the same start."""
    content, style = make_image("c.png", 40, 48, seed=0), make_image("s.png", 40, 40, seed=1)
    images = {}
    for kind in ("gram", "sliced"):
        output, report = tmp_path / f"{kind}.png", tmp_path / f"{kind}.json"
        result = cli(
            "stylize", content, style, "-o", output, "--model", tiny_model, "--size", 48, "--scales", "24,48",
            "--scale-iterations", "3,2", "--style-weight", 1e4, "--style-loss", kind, "--report", report,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        data = json.loads(report.read_text())
        assert data["config"]["loss"]["style_loss"] == kind
        assert np.isfinite(data["final"]["loss"])
        images[kind] = load_image(output)
    assert images["sliced"].shape == (40, 48, 3)
    assert np.abs(images["sliced"] - images["gram"]).mean() > 1 / 255
    result = cli(
        "stylize", content, style, "-o", tmp_path / "x.png", "--model", tiny_model, "--style-loss", "hist"
    )
    assert result.exit_code == 2 and "'hist' is not one of 'gram', 'sliced'" in result.stderr


@pytest.mark.parametrize("mode", ["luminance", "histogram", "painting"])
def test_cli_preserve_colors(tiny_model, make_image, tmp_path, mode, cli):
    content, style = make_image("c.png", 40, 48, seed=0), make_image("s.png", 40, 40, seed=1)
    output = tmp_path / "out.png"
    result = cli(
        "stylize", content, style, "-o", output, "--model", tiny_model, "--size", 48, "--iterations", 3,
        "--preserve-colors", mode,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert load_image(output).shape == (40, 48, 3)


# --- interrupts and resume: real processes, real signals ---------------------------------------


def wait_for(path, process, seconds=300):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_image_and_report_then_resume_finishes(
    tiny_model, make_image, tmp_path, signum, cli, cli_popen
):
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    process = cli_popen(
        "stylize", make_image(), make_image("s.png"), "-o", out, "--model", tiny_model, "--size", 32,
        "--iterations", 1000, "--report", report, "--save-every", 2, "--quiet", "--optimizer", "adam",
    )  # fmt: skip
    wait_for(tmp_path / "o_00002.png", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted: last image saved to" in stderr and f"nst-ort resume {report}" in stderr
    data = json.loads(report.read_text())
    done = data["iterations"][-1]["step"]
    assert data["status"] == "interrupted" and 2 <= done < 1000
    assert Image.open(out).size == (32, 26)

    # resume finishes the remaining iterations and continues the same report
    data["config"]["iterations"] = done + 3
    report.write_text(json.dumps(data))
    resumed = cli("resume", report, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    after = json.loads(report.read_text())
    assert after["status"] == "done" and after["resumed_from_step"] == done
    assert [it["step"] for it in after["iterations"]][-4:] == [done, done + 1, done + 2, done + 3]
    assert len(after["passes"]) == 2
    again = cli("resume", report)
    assert again.exit_code == 2
    assert "the run ended 'done'; there is nothing to resume" in again.error


def test_resume_of_something_else_is_one_line(tmp_path, cli):
    (tmp_path / "r.json").write_text("{}")
    assert "not a report written by" in cli("resume", tmp_path / "r.json").error
    assert "no such report" in cli("resume", tmp_path / "missing.json").error


# --- tiles ---------------------------------------------------------------------------------------

TILED = ["--size", 96, "--min-scale", 0, "--tile", 48, "--threads", 1]  # 72 x 96 px: 2 x 3 tiles


def test_a_tiled_run_reports_its_tiles_and_leaves_no_checkpoint(tiny_model, make_image, tmp_path, cli):
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    result = cli(
        "stylize", make_image("c.png", 72, 96), make_image("s.png", 64, 64, seed=1), "-o", out,
        "--model", tiny_model, *TILED, "--iterations", 3, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "stylizing in 6 tiles" in result.stderr
    assert load_image(out).shape == (72, 96, 3)
    data = json.loads(report.read_text())
    assert data["config"]["tile"] == 48
    (tiled,) = data["passes"]
    assert (tiled["height"], tiled["width"], tiled["grid"]["tile_width"]) == (72, 96, 43)
    assert [t["index"] for t in tiled["tiles"]] == list(range(6))
    assert [it["step"] for it in data["iterations"]] == [1, 2, 3]
    assert data["evaluations"] == 6 * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "o.png", "r.json", "s.png"]


def test_an_interrupted_tiled_run_resumes_from_its_tiles(tiny_model, make_image, tmp_path, cli, cli_popen):
    content, style = make_image("c.png", 72, 96), make_image("s.png", 64, 64, seed=1)
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    args = [content, style, "--model", tiny_model, *TILED, "--iterations", 40]
    process = cli_popen("stylize", *args, "-o", out, "--report", report, "--quiet")
    wait_for(tmp_path / "r.tiles" / "tile-0000.npz", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"nst-ort resume {report}" in stderr
    data = json.loads(report.read_text())
    assert data["status"] == "interrupted" and data["message"].startswith("interrupted at tile")
    done = [t["index"] for t in data["passes"][0]["tiles"]]
    assert 1 <= len(done) < 6 and done == list(range(len(done)))
    assert Image.open(out).size == (96, 72)  # the image so far, at the pass's size

    resumed = cli("resume", report, "--quiet")
    assert resumed.exit_code == 0, resumed.stderr
    after = json.loads(report.read_text())
    tiles = after["passes"][-1]["tiles"]
    assert [t["index"] for t in tiles if t["resumed"]] == done  # read back, not run again
    assert [t["evaluations"] for t in tiles if not t["resumed"]] == [40] * (6 - len(done))
    assert [it["step"] for it in after["iterations"]] == list(range(1, 41))
    assert not (tmp_path / "r.tiles").exists()

    whole = cli("stylize", *args, "-o", tmp_path / "whole.png", "--quiet")  # never interrupted
    assert whole.exit_code == 0, whole.stderr
    np.testing.assert_array_equal(load_image(out), load_image(tmp_path / "whole.png"))
