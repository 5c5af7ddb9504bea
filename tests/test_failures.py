"""Every failure a user can cause or meet: exit code, message, and the files left behind."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.files import atomic_path
from nst_ort.imageio import load_image
from nst_ort.loop import run_adam, run_lbfgs
from nst_ort.memory import check_fits, estimate_bytes, largest_fitting_side
from nst_ort.model import load_model

CLI = [sys.executable, "-c", "from nst_ort.cli import main; main()"]


def cli(*args, **kwargs):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kwargs)


def one_line_error(result, code=2):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- input images ------------------------------------------------------------------------------


def write(path, mode, size=(40, 30), **save):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray((rng.random(size[::-1]) * 65535).astype(np.uint16))
    else:
        image = Image.fromarray((rng.random((*size[::-1], 3)) * 255).astype(np.uint8)).convert(mode)
    image.save(path, **save)
    return path


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("gray.png", "L"),
        ("cmyk.jpg", "CMYK"),
        ("palette.png", "P"),
        ("alpha.png", "RGBA"),
        ("gray16.png", "I;16"),
        ("la.png", "LA"),
        ("bw.png", "1"),
    ],
)
def test_image_modes_load_as_rgb(tmp_path, name, mode):
    image = load_image(write(tmp_path / name, mode))
    assert image.shape == (30, 40, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05


def test_sixteen_bit_keeps_its_range(tmp_path):
    path = tmp_path / "ramp16.png"
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (20, 1))
    Image.fromarray(ramp).save(path)
    actual = load_image(path)[0, :, 0]
    np.testing.assert_allclose(actual, np.linspace(0, 1, 64), atol=1e-4)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(path)
    np.testing.assert_allclose(load_image(path), 1.0)


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == (40, 20, 3)  # displayed portrait
    assert image[:15].mean() > 0.9 and image[-15:].mean() < 0.1  # the white half ends up on top


def _tiff_with_exif() -> bytes:
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
def test_bad_image_files_are_one_line_naming_the_file(tmp_path, tiny_model, make_image, make, message):
    bad = make(tmp_path / "bad.png")
    result = cli("stylize", bad, make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model)
    line = one_line_error(result)
    assert str(bad) in line and message in line
    assert not (tmp_path / "o.png").exists()


def test_truncated_jpeg(tmp_path, make_image):
    good = make_image("good.jpg", 64, 64)
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(NstError, match="truncated.jpg: damaged image"):
        load_image(bad)


# --- models ------------------------------------------------------------------------------------


def test_newer_format_version_is_refused(tmp_path, tiny_model):
    import onnx

    model = onnx.load(str(tiny_model))
    for prop in model.metadata_props:
        if prop.key == contract.META_FORMAT_VERSION:
            prop.value = "99"
    onnx.save(model, str(tmp_path / "future.onnx"))
    with pytest.raises(
        NstError, match="model format version 99, this nst-ort reads version 1; export it again"
    ):
        load_model(tmp_path / "future.onnx")


# --- memory ------------------------------------------------------------------------------------


def test_huge_sizes_are_refused_up_front(tiny_model, make_image, tmp_path):
    result = cli(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        tmp_path / "o.png",
        "--model",
        tiny_model,
        "--size",
        200000,
        "--iterations",
        1,
    )
    line = one_line_error(result)
    assert "GiB of memory" in line and "the largest size that fits is about --size" in line


def test_memory_estimate_and_largest_size(tiny_model):
    _, info = load_model(tiny_model)
    spec = LossSpec()
    small, large = estimate_bytes(info, spec, 256, 256), estimate_bytes(info, spec, 512, 512)
    assert 0.5e9 < small < 2e9 and large > small  # measured: about 1.2 GB at 256 px
    side = largest_fitting_side(info, spec, 300, 400, available=large)
    assert 560 <= side <= 591 and side % 16 == 0  # 0.75·L² = 512² gives L = 591
    assert estimate_bytes(info, spec, side * 3 // 4, side) <= large
    check_fits(info, spec, 300, 400, available=large)
    with pytest.raises(NstError, match="400x300 px needs about .* GiB"):
        check_fits(info, spec, 300, 400, available=small // 2)


# --- numerical failure ---------------------------------------------------------------------------


class Exploding:
    """A quadratic whose content term becomes NaN after a few evaluations."""

    shape = (1, 3, 4, 4)

    def __init__(self, after):
        self.calls, self.after, self.image = 0, after, np.zeros(self.shape, np.float32)

    def value_and_grad(self, image):
        self.calls += 1
        bad = self.calls > self.after
        value = float("nan") if bad else float(((image - 0.7) ** 2).sum())
        terms = {
            contract.LOSS: value,
            contract.LOSS_CONTENT: value,
            contract.LOSS_STYLE: 0.0,
            contract.LOSS_TV: 0.0,
        }
        return terms, 2 * (image - 0.7)

    # Adam interface
    def set_image(self, image):
        self.image = image.copy()

    def get_image(self):
        return self.image.copy()

    def adam_step(self, lr):
        terms, grad = self.value_and_grad(self.image)
        self.image = self.image - lr * np.sign(grad) if self.calls <= self.after else self.image * np.nan
        return terms

    def clip_image(self):
        np.clip(self.image, 0, 1, out=self.image)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_nonfinite_loss_stops_and_keeps_the_last_good_image(optimizer):
    objective = Exploding(after=1)
    start = np.full(Exploding.shape, 0.2, np.float32)
    if optimizer == "lbfgs":
        result = run_lbfgs(objective, start, 20)
    else:
        result = run_adam(objective, start, 20, 0.05)
    assert result.status == "nonfinite"
    assert "loss.content term became nan" in result.message and "smaller --lr" in result.message
    assert np.all(np.isfinite(result.image)) and len(result.records) < 20


def test_overflowing_weights_exit_1_and_keep_the_image(tiny_model, make_image, tmp_path):
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    result = cli(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        out,
        "--model",
        tiny_model,
        "--size",
        32,
        "--iterations",
        3,
        "--tv-weight",
        1e38,
        "--report",
        report,
        "--quiet",
    )
    line = one_line_error(result, code=1)
    assert "stopped: the loss term became inf" in line and "last good image saved" in line
    assert out.is_file()
    assert json.loads(report.read_text())["status"] == "nonfinite"


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [("stylize", "--style-weight", "nan"), ("stylize", "--lr", "inf"), ("bundle", "--tv-weight", "nan")],
)
def test_non_finite_options_are_refused(tiny_model, make_image, tmp_path, command, option, value):
    output = tmp_path / ("o.png" if command == "stylize" else "bundle")
    result = cli(
        command, make_image(), make_image("s.png"), "-o", output, "--model", tiny_model, option, value
    )
    assert one_line_error(result) == f"error: {option} {value}: must be a finite number"
    assert not output.exists()


# --- interrupts and resume ---------------------------------------------------------------------


def wait_for(path, process, seconds=300):
    deadline = time.time() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_saves_image_and_report_then_resume_finishes(tiny_model, make_image, tmp_path, signum):
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    args = [
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        out,
        "--model",
        tiny_model,
        "--size",
        32,
        "--iterations",
        1000,
        "--report",
        report,
        "--save-every",
        2,
        "--quiet",
        "--optimizer",
        "adam",
    ]
    process = subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
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
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(report.read_text())
    assert after["status"] == "done" and after["resumed_from_step"] == done
    assert [it["step"] for it in after["iterations"]][-4:] == [done, done + 1, done + 2, done + 3]
    assert len(after["passes"]) == 2
    again = cli("resume", report)
    assert "the run ended 'done'; there is nothing to resume" in one_line_error(again)


def test_resume_of_something_else_is_one_line(tmp_path):
    (tmp_path / "r.json").write_text("{}")
    assert "not a report written by" in one_line_error(cli("resume", tmp_path / "r.json"))
    assert "no such report" in one_line_error(cli("resume", tmp_path / "missing.json"))


# --- outputs -----------------------------------------------------------------------------------


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full, say")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_new_files_get_the_usual_permissions(tmp_path, make_image):
    from nst_ort.imageio import save_image

    save_image(tmp_path / "o.png", np.zeros((16, 16, 3), np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "o.png").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing/o.png", "no such folder"),
        ("o.xyz", "unknown image extension '.xyz'"),
        (".", "is a directory"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(tiny_model, make_image, tmp_path, output, message):
    result = cli("stylize", make_image(), make_image("s.png"), "-o", tmp_path / output, "--model", tiny_model)
    assert message in one_line_error(result)


# --- artifact cache ----------------------------------------------------------------------------


def test_concurrent_builds_of_one_entry(tiny_model, tmp_path):
    code = (
        "import sys; from pathlib import Path\n"
        "from nst_ort.backends import artifacts\nfrom nst_ort.config import LossSpec\n"
        "from nst_ort.model import load_model\n"
        "m, info = load_model(Path(sys.argv[1]))\n"
        "a = artifacts.ensure(m, info.sha256, LossSpec(), 24, 24, Path(sys.argv[2]))\n"
        "print(a.directory)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tiny_model), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert outputs[0][0] == outputs[1][0]
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(outputs[0][0].strip())]
