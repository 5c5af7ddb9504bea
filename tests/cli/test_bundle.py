"""`nst-ort bundle` and `nst-ort run-bundle`."""

import json

import numpy as np
import pytest
from PIL import Image

from tests.requires import needs_training


@pytest.mark.parametrize(
    ("backend", "version"), [(None, 2), pytest.param("ort-training", 1, marks=needs_training)]
)
def test_bundle_then_run_bundle(tiny_model, make_image, tmp_path, cli, backend, version):
    """ort-graph bundles by default (version 2), ort-training ones on request; run-bundle runs both."""
    content, style = make_image("c.png", 64, 80, seed=0), make_image("s.png", 64, 64, seed=1)
    folder = tmp_path / "bundle"
    chosen = [] if backend is None else ["--backend", backend]
    made = cli(
        "bundle",
        content,
        style,
        "-o",
        folder,
        "--model",
        tiny_model,
        "--size",
        64,
        "--iterations",
        2,
        *chosen,
    )
    assert made.exit_code == 0, made.stderr
    assert f"run it with: nst-ort run-bundle {folder} -o OUT.png" in made.stdout
    manifest = json.loads((folder / "bundle.json").read_text())
    assert (manifest["version"], manifest["backend"]) == (version, backend or "ort-graph")
    assert manifest["optimizer"]["iterations"] == 2 and manifest["source"]["init"] == "noise"

    output = tmp_path / "cli.png"
    result = cli("run-bundle", folder, "-o", output, "--iterations", "1", "--threads", "1")
    assert result.exit_code == 0, result.stderr
    with Image.open(output) as image:
        assert np.asarray(image).shape == (51, 64, 3)
    assert "done:" in result.stdout


def test_run_bundle_rejects_a_folder_without_bundle_json(tmp_path, cli):
    result = cli("run-bundle", tmp_path, "-o", tmp_path / "out.png")
    assert result.exit_code == 2
    assert (
        result.error == f"error: {tmp_path}: not a bundle (no bundle.json); write one with `nst-ort bundle`"
    )
    assert not (tmp_path / "out.png").exists()


def test_bundle_refuses_a_non_empty_folder(tiny_model, make_image, tmp_path, cli):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    content, style = make_image("c.png"), make_image("s.png")
    result = cli("bundle", content, style, "--model", tiny_model, "--size", 64, "-o", target)
    assert result.exit_code == 2
    assert result.error == f"error: {target}: folder exists and is not empty; choose a new folder"
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png", "taken"]  # no temporary folder
