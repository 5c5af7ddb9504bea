"""Studies: reconstructions from single layers and sweeps with a labelled contact sheet."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nst_ort import NstError, StylizeConfig
from nst_ort.cli import app
from nst_ort.imageio import load_image
from nst_ort.sheet import BACKGROUND, GAP, HEADER_HEIGHT, LABEL_WIDTH, LINE_HEIGHT
from nst_ort.studies import (
    AxisKind,
    ReconstructKind,
    make_sweep,
    parse_numbers,
    parse_style_layers,
    reconstruct,
    reconstruction_loss,
    run_sweep,
)

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "labels"),
    [
        ("relu1_1,relu3_1", [("relu1_1",), ("relu3_1",)], ["relu1_1", "relu3_1"]),
        ("relu1_1+relu2_1,relu5_1", [("relu1_1", "relu2_1"), ("relu5_1",)], ["relu1_1+relu2_1", "relu5_1"]),
        (
            "cumulative:relu1_1..relu3_1",
            [("relu1_1",), ("relu1_1", "relu2_1"), ("relu1_1", "relu2_1", "relu3_1")],
            ["relu1_1", "relu1_1..relu2_1", "relu1_1..relu3_1"],
        ),
    ],
)
def test_parse_style_layers(text, values, labels):
    axis = parse_style_layers(text, STYLE_LAYERS)
    assert list(axis.values) == values
    assert list(axis.labels) == labels


def test_parse_numbers():
    assert parse_numbers(AxisKind.RATIO, "1e-5,2.5e-3").labels == ("1e-5", "2.5e-3")
    assert parse_numbers(AxisKind.STYLE_SIZE, "128,256").values == (128, 256)
    assert parse_numbers(AxisKind.STYLE_SCALE, "0.5,2").labels == ("x0.5", "x2")
    for kind, text in ((AxisKind.RATIO, "a"), (AxisKind.RATIO, "0,1"), (AxisKind.STYLE_SIZE, "8,100.5")):
        with pytest.raises(NstError):
            parse_numbers(kind, text)


def test_sweep_axes_order_and_limits(tmp_path):
    ratio = parse_numbers(AxisKind.RATIO, "1e-4,1e-3")
    layers = parse_style_layers("relu1_1,relu2_1", STYLE_LAYERS)
    scale = parse_numbers(AxisKind.STYLE_SCALE, "0.5,1")
    sweep = make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio, layers])
    assert (sweep.rows.kind, sweep.cols.kind) == (AxisKind.STYLE_LAYERS, AxisKind.RATIO)  # as Figure 3
    assert make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio]).rows is None
    with pytest.raises(NstError, match="one or two axes, not 3"):
        make_sweep(tmp_path, tmp_path, StylizeConfig(), [ratio, layers, scale])
    with pytest.raises(NstError, match="needs an axis"):
        make_sweep(tmp_path, tmp_path, StylizeConfig(), [])


# --- sweeps ------------------------------------------------------------------------------------


def snapshot(folder) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sweep_2x2_then_resume(tiny_model, make_image, tmp_path):
    content, style = make_image("c.png", 64, 80, seed=0), make_image("s.png", 64, 64, seed=1)
    out = tmp_path / "sweep"
    args = ["sweep", content, style, "-o", out, "--model", tiny_model, "--size", 64, "--iterations", 3]
    args += ["--style-layers", "relu1_1,relu2_1", "--ratio", "1e-4,1e-2"]
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "ran 4 cells, 0 already done" in first.output

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
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert "4 of 4 cells already done" in second.output
    assert "nothing to do" in second.output
    assert snapshot(out) == before  # not a byte, not a timestamp changed

    # Resume after an interrupt: a cell without its record runs again, alone.
    # (the cell's record, not its report: "r1c1-*.json" matches both)
    next(p for p in out.glob("cells/r1c1-*.json") if not p.name.endswith(".report.json")).unlink()
    third = invoke(*args)
    assert third.exit_code == 0, third.output
    assert "ran 1 cells, 3 already done" in third.output
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 4


def test_an_interrupted_sweep_keeps_finished_cells_and_resumes(tiny_model, make_image, tmp_path):
    from nst_ort.engine import Engine

    content, style = make_image("c.png", 32, 40, seed=0), make_image("s.png", 32, 32, seed=1)
    engine = Engine(tiny_model, "cpu")
    ratio = parse_numbers(AxisKind.RATIO, "1e-4,1e-2")
    sweep = make_sweep(content, style, StylizeConfig(model=tiny_model, size=32, iterations=3), [ratio])
    out = tmp_path / "sweep"

    def interrupt_the_second_cell(cell):
        def callback(record, image):
            if cell.col == 1:
                raise KeyboardInterrupt  # what Ctrl-C raises inside the loop

        return callback

    first = run_sweep(sweep, out, engine, callback_for=interrupt_the_second_cell)
    assert first.interrupted and (first.ran, first.skipped) == (1, 0)
    assert sorted(p.name.split("-")[0] for p in (out / "cells").iterdir()) == ["r0c0"] * 3
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 1

    second = run_sweep(sweep, out, engine)
    assert not second.interrupted and (second.ran, second.skipped) == (1, 1)
    assert [r["col_label"] for r in second.records] == ["1e-4", "1e-2"]


def test_sweep_in_worker_processes(tiny_model, make_image, tmp_path):
    content, style = make_image("c.png", 32, 40, seed=0), make_image("s.png", 32, 32, seed=1)
    common = ["--model", tiny_model, "--size", 32, "--iterations", 2, "--ratio", "1e-4,1e-2"]
    sequential = invoke("sweep", content, style, "-o", tmp_path / "one", *common)
    parallel = invoke("sweep", content, style, "-o", tmp_path / "two", *common, "--jobs", 2)
    assert sequential.exit_code == 0, sequential.output
    assert parallel.exit_code == 0, parallel.output
    actual = json.loads((tmp_path / "two" / "results.json").read_text())["cells"]
    desired = json.loads((tmp_path / "one" / "results.json").read_text())["cells"]
    assert [c["col_label"] for c in actual] == [c["col_label"] for c in desired]  # grid order
    for a, d in zip(actual, desired, strict=True):
        assert a["image"] == d["image"]  # the same settings give the same cell names
        np.testing.assert_allclose(a["loss"], d["loss"], rtol=1e-3)
    assert len(list((tmp_path / "two" / "cells").glob("*.png"))) == 2


def test_sweep_refuses_bad_axes(tiny_model, make_image, tmp_path):
    content, style = make_image("c.png"), make_image("s.png")
    base = ["sweep", content, style, "-o", tmp_path / "out", "--model", tiny_model]
    result = invoke(
        *base, "--ratio", "1e-4,1e-3", "--style-size", "64,128", "--content-layer", "relu1_2,relu2_2"
    )
    assert isinstance(result.exception, NstError) and "one or two axes, not 3" in str(result.exception)
    result = invoke(*base, "--content-layer", "relu3_1,relu4_2")
    assert isinstance(result.exception, NstError)
    assert "unknown content layer 'relu3_1'" in str(result.exception)
    assert not (tmp_path / "out").exists()


# --- reconstructions ---------------------------------------------------------------------------


def test_content_reconstruction_is_exact_low_and_loose_high(tiny_model, make_image):
    """The paper's Figure 1: a low layer keeps the pixels, a high one only the arrangement."""
    image = make_image("c.png", 64, 64, seed=0)
    desired = load_image(image)
    errors = {}
    for layer in ("relu1_2", "relu5_2"):
        config = StylizeConfig(
            model=tiny_model,
            size=64,
            iterations=15,
            loss=reconstruction_loss(ReconstructKind.CONTENT, [layer]),
        )
        result = reconstruct(image, ReconstructKind.CONTENT, config)
        assert result.image.shape == (64, 64, 3)
        final = result.report.finish(result.status, result.message, None)["final"]
        assert final["loss.style"] == 0.0
        errors[layer] = float(np.mean(np.abs(result.image - desired)))
    assert errors["relu1_2"] < 0.01
    assert errors["relu5_2"] > 0.1


def test_cli_reconstruct_style(tiny_model, make_image, tmp_path):
    image = make_image("s.png", 48, 64, seed=2)
    output, report = tmp_path / "texture.png", tmp_path / "report.json"
    result = invoke(
        "reconstruct", "style", image, "-o", output, "--layers", "relu1_1,relu2_1", "--model", tiny_model,
        "--size", 32, "--iterations", 5, "--report", report,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_image(output).shape == (24, 32, 3)
    data = json.loads(report.read_text())
    assert data["config"]["loss"]["style_layers"] == {"relu1_1": 0.5, "relu2_1": 0.5}
    assert data["config"]["loss"]["content_layers"] == {}
    assert data["final"]["loss.content"] == 0.0
    assert data["iterations"][-1]["loss.style"] < data["iterations"][0]["loss.style"]


def test_cli_reconstruct_content_refuses_a_layer_the_model_lacks(tiny_model, make_image, tmp_path):
    result = invoke(
        "reconstruct", "content", make_image("c.png"), "-o", tmp_path / "o.png", "--layer", "relu3_1",
        "--model", tiny_model,
    )  # fmt: skip
    assert isinstance(result.exception, NstError)
    assert "unknown content layer 'relu3_1'" in str(result.exception)
    assert "relu3_2" in str(result.exception)  # names the layers there are
    assert not (tmp_path / "o.png").exists()
