"""`nst-ort sweep` and `nst-ort reconstruct`: the folder a sweep leaves, resumes, refusals."""

import csv
import json

import numpy as np
from PIL import Image

from nst_ort.imageio import load_image
from nst_ort.studies.sheet import BACKGROUND, GAP, HEADER_HEIGHT, LABEL_WIDTH, LINE_HEIGHT


def snapshot(folder) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sweep_2x2_then_resume(tiny_model, make_image, tmp_path, cli):
    content, style = make_image("c.png", 64, 80, seed=0), make_image("s.png", 64, 64, seed=1)
    out = tmp_path / "sweep"
    args = ["sweep", content, style, "-o", out, "--model", tiny_model, "--size", 64, "--iterations", 3]
    args += ["--style-layers", "relu1_1,relu2_1", "--ratio", "1e-4,1e-2"]
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    assert "ran 4 cells, 0 already done" in first.stdout

    images = sorted((out / "cells").glob("*.png"))
    assert len(images) == 4
    assert all(load_image(p).shape == (51, 64, 3) for p in images)

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    actual = {(r["row_label"], r["col_label"], r["style_layers"], float(r["style_weight"])) for r in rows}
    desired = {
        ("relu1_1", "1e-4", "relu1_1", 1e4),
        ("relu1_1", "1e-2", "relu1_1", 1e2),
        ("relu2_1", "1e-4", "relu2_1", 1e4),
        ("relu2_1", "1e-2", "relu2_1", 1e2),
    }
    assert actual == desired
    assert all(r["status"] == "done" and int(r["evaluations"]) >= 3 and float(r["seconds"]) > 0 for r in rows)
    assert all(np.isfinite(float(r["loss"])) and float(r["loss.style"]) > 0 for r in rows)
    data = json.loads((out / "results.json").read_text())
    assert len(data["cells"]) == 4
    assert data["rows"]["labels"] == ["relu1_1", "relu2_1"] and data["cols"]["labels"] == ["1e-4", "1e-2"]
    for cell in data["cells"]:  # each cell's report has stylize's format
        report = json.loads((out / cell["image"].replace(".png", ".report.json")).read_text())
        assert report["status"] == "done" and len(report["passes"]) == 1

    sheet = np.asarray(Image.open(out / "sheet.png").convert("RGB"))
    desired_size = (HEADER_HEIGHT + 2 * 51 + 3 * GAP, LABEL_WIDTH + 2 * 64 + 3 * GAP)
    assert sheet.shape[:2] == desired_size
    ink = np.any(sheet != np.array(BACKGROUND, np.uint8), axis=2)
    for c in range(2):  # a column label above each column
        x = LABEL_WIDTH + GAP + c * (64 + GAP)
        assert ink[GAP + LINE_HEIGHT : HEADER_HEIGHT, x : x + 64].sum() > 20
    for r in range(2):  # a row label beside each row
        y = HEADER_HEIGHT + GAP + r * (51 + GAP)
        assert ink[y : y + 51, :LABEL_WIDTH].sum() > 20
    assert ink[: GAP + LINE_HEIGHT, LABEL_WIDTH:].sum() > 20  # the column axis title
    # The images themselves are on the sheet.
    first_cell = sheet[
        HEADER_HEIGHT + GAP : HEADER_HEIGHT + GAP + 51, LABEL_WIDTH + GAP : LABEL_WIDTH + GAP + 64
    ]
    r0c0 = next(p for p in images if p.name.startswith("r0c0-"))
    np.testing.assert_array_equal(first_cell, np.asarray(Image.open(r0c0).convert("RGB")))

    before = snapshot(out)
    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "4 of 4 cells already done" in second.stderr
    assert "nothing to do" in second.stdout
    assert snapshot(out) == before  # not a byte, not a timestamp changed

    # Resume after an interrupt: a cell without its record runs again, alone.
    # (the cell's record, not its report: "r1c1-*.json" matches both)
    next(p for p in out.glob("cells/r1c1-*.json") if not p.name.endswith(".report.json")).unlink()
    third = cli(*args)
    assert third.exit_code == 0, third.stderr
    assert "ran 1 cells, 3 already done" in third.stdout
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 4


def test_sweep_in_worker_processes(tiny_model, make_image, tmp_path, cli):
    content, style = make_image("c.png", 32, 40, seed=0), make_image("s.png", 32, 32, seed=1)
    # One thread in both: the same arithmetic, whatever the machine's cores (threads otherwise
    # default to the cores, shared among the jobs, and sums in another order part L-BFGS runs).
    common = ["--model", tiny_model, "--size", 32, "--iterations", 2, "--ratio", "1e-4,1e-2", "--threads", 1]
    sequential = cli("sweep", content, style, "-o", tmp_path / "one", *common)
    parallel = cli("sweep", content, style, "-o", tmp_path / "two", *common, "--jobs", 2)
    assert sequential.exit_code == 0, sequential.stderr
    assert parallel.exit_code == 0, parallel.stderr
    actual = json.loads((tmp_path / "two" / "results.json").read_text())["cells"]
    desired = json.loads((tmp_path / "one" / "results.json").read_text())["cells"]
    assert [c["col_label"] for c in actual] == [c["col_label"] for c in desired]  # grid order
    for a, d in zip(actual, desired, strict=True):
        assert a["image"] == d["image"]  # the same settings give the same cell names
        np.testing.assert_allclose(a["loss"], d["loss"], rtol=1e-3)
    assert len(list((tmp_path / "two" / "cells").glob("*.png"))) == 2


def test_sweep_refuses_bad_axes(tiny_model, make_image, tmp_path, cli):
    content, style = make_image("c.png"), make_image("s.png")
    base = ["sweep", content, style, "-o", tmp_path / "out", "--model", tiny_model]
    result = cli(
        *base, "--ratio", "1e-4,1e-3", "--style-size", "64,128", "--content-layer", "relu1_2,relu2_2"
    )
    assert result.exit_code == 2 and "one or two axes, not 3" in result.error
    result = cli(*base, "--content-layer", "relu5_4,relu4_2")
    assert result.exit_code == 2 and "unknown content layer 'relu5_4'" in result.error
    result = cli(*base, "--style-size", "64", "--style-scale", "1,2")
    assert result.error == "error: --style-size and --style-scale set the same thing; give one"
    result = cli(*base, "--ratio", "0,1")
    assert result.error == "error: --ratio: values must be positive"
    assert not (tmp_path / "out").exists()


def test_cli_reconstruct_style(tiny_model, make_image, tmp_path, cli):
    image = make_image("s.png", 48, 64, seed=2)
    output, report = tmp_path / "texture.png", tmp_path / "report.json"
    result = cli(
        "reconstruct", "style", image, "-o", output, "--layers", "relu1_1,relu2_1", "--model", tiny_model,
        "--size", 32, "--iterations", 5, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert load_image(output).shape == (24, 32, 3)
    data = json.loads(report.read_text())
    assert data["config"]["loss"]["style_layers"] == {"relu1_1": 0.5, "relu2_1": 0.5}
    assert data["config"]["loss"]["content_layers"] == {}
    assert data["final"]["loss.content"] == 0.0
    assert data["iterations"][-1]["loss.style"] < data["iterations"][0]["loss.style"]


def test_cli_reconstruct_content_refuses_a_layer_the_model_lacks(tiny_model, make_image, tmp_path, cli):
    result = cli(
        "reconstruct", "content", make_image("c.png"), "-o", tmp_path / "o.png", "--layer", "relu5_4",
        "--model", tiny_model,
    )  # fmt: skip
    assert result.exit_code == 2
    assert "unknown content layer 'relu5_4'" in result.error
    assert "relu3_2" in result.error  # names the layers there are
    assert not (tmp_path / "o.png").exists()
