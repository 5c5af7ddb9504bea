"""`nst-ort batch`: photos x styles on this machine, the folder it leaves, resumes, refusals.

The same on a Ray cluster: tests/studies/test_cluster.py.
"""

import csv
import json

from nst_ort.config import StylizeConfig
from nst_ort.imageio import load_image


def snapshot(folder) -> dict:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_batch_of_a_folder_by_two_styles_then_a_photo_more(tiny_model, make_image, tmp_path, cli):
    (tmp_path / "photos").mkdir()
    make_image("photos/a.png", 48, 64, seed=0)
    make_image("photos/b.jpg", 64, 48, seed=2)
    (tmp_path / "photos" / "notes.txt").write_text("not a photo: left out of the folder's images")
    s1, s2 = make_image("s1.png", 48, 48, seed=1), make_image("s2.png", 56, 56, seed=3)
    out = tmp_path / "out"
    args = ["batch", tmp_path / "photos", "-s", s1, "--style", s2, "-o", out, "--model", tiny_model]
    args += ["--size", 48, "--iterations", 3]
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    assert "batch: 2 content x 2 style images at 48 px" in first.stderr
    assert "ran 4 cells, 0 already done" in first.stdout

    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    actual = [(r["row_label"], r["col_label"], r["status"], r["image"].split("-")[0]) for r in rows]
    desired = [
        ("a.png", "s1.png", "done", "cells/a.s1"),
        ("a.png", "s2.png", "done", "cells/a.s2"),
        ("b.jpg", "s1.png", "done", "cells/b.s1"),
        ("b.jpg", "s2.png", "done", "cells/b.s2"),
    ]
    assert actual == desired
    assert {r["content"] for r in rows} == {str(tmp_path / "photos" / n) for n in ("a.png", "b.jpg")}
    loss = StylizeConfig().loss  # stylize's
    assert {(r["style_weight"], r["content_layers"]) for r in rows} == {
        (str(loss.style_weight), "+".join(loss.content_layers))
    }
    assert load_image(out / rows[2]["image"]).shape == (48, 36, 3)  # b.jpg is upright
    data = json.loads((out / "results.json").read_text())
    assert data["content"] is None and data["rows"]["axis"] == "content"
    assert data["cols"]["paths"] == [str(s1), str(s2)]
    assert (out / "sheet.png").is_file()

    # A photo more, sorted first: the four cells already there are kept as they are.
    make_image("photos/0.png", 48, 48, seed=4)
    before = snapshot(out / "cells")
    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "4 of 6 cells already done" in second.stderr
    assert "ran 2 cells, 4 already done" in second.stdout
    after = snapshot(out / "cells")
    assert {p: v for p, v in after.items() if p in before} == before
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [(c["row"], c["row_label"]) for c in cells[::2]] == [(0, "0.png"), (1, "a.png"), (2, "b.jpg")]


def test_a_photo_that_cannot_be_read_fails_alone(tiny_model, make_image, tmp_path, cli):
    good, style = make_image("good.png", 48, 48), make_image("s.png", 48, 48, seed=1)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "out"
    args = [
        "batch",
        bad,
        good,
        "-s",
        style,
        "-o",
        out,
        "--model",
        tiny_model,
        "--size",
        48,
        "--iterations",
        2,
    ]
    result = cli(*args, "-q")
    assert result.exit_code == 1
    assert result.error.startswith("error: 1 of 2 cells failed (see results.csv), the others are done; ")
    assert f"bad.png | s.png: {bad}: " in result.error
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [(c["row_label"], c["status"], c["image"] is None) for c in cells] == [
        ("bad.png", "failed", True),
        ("good.png", "done", False),
    ]
    # A failed cell is not marked done: the next run tries it again, and only it.
    again = cli(*args)
    assert again.exit_code == 1
    assert "1 of 2 cells already done" in again.stderr and "ran 1 cells, 1 already done" in again.stdout


def test_batch_refuses_missing_inputs_before_anything_runs(tiny_model, make_image, tmp_path, cli):
    style, out = make_image("s.png"), tmp_path / "out"
    base = ["-s", style, "-o", out, "--model", tiny_model]
    result = cli("batch", tmp_path / "missing.png", *base)
    assert (result.exit_code, result.error) == (2, f"error: {tmp_path / 'missing.png'}: no such file")
    (tmp_path / "empty").mkdir()
    result = cli("batch", tmp_path / "empty", *base)
    assert result.error == f"error: {tmp_path / 'empty'}: no images in this folder"
    result = cli("batch", style, style, *base)
    assert result.error == f"error: {style}: given twice as a content image"
    result = cli("batch", style, "-o", out, "--model", tiny_model)
    assert result.exit_code == 2 and "--style" in result.stderr  # a usage error: no style given
    out.write_text("a file")
    result = cli("batch", style, *base)
    assert result.error == f"error: {out}: exists and is not a folder"


def test_batch_help_says_what_it_does(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = cli("batch", "--help")
    assert result.exit_code == 0
    assert "Stylise every CONTENT photo with every --style image" in result.stdout
    for option in ("--style", "--ray", "--jobs", "--threads", "--preserve-colors"):
        assert option in result.stdout
