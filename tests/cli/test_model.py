"""`nst-ort export` and `nst-ort info`."""

import json

import onnx
import pytest

from nst_ort import contract
from nst_ort.contract import Arch
from tests.requires import needs_torch


@needs_torch
def test_cli_export_and_info(tmp_path, cli):
    path = tmp_path / "m.onnx"
    result = cli(
        "export",
        "--weights",
        "random",
        "-o",
        path,
        "--style-layers",
        "relu1_1,relu2_1",
        "--content-layers",
        "relu2_2",
    )
    assert result.exit_code == 0, result.stderr
    assert f"wrote {path}" in result.stdout.replace("\n", "")
    assert "style layers: relu1_1, relu2_1" in result.stdout
    info = cli("info", path, "--json")
    assert info.exit_code == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["content_layers"] == ["relu2_2"] and data["weights"] == "random:0"
    text = cli("info", path).stdout
    assert "pooling:" in text and "avg" in text and f"format version:  {contract.FORMAT_VERSION}" in text
    assert "gradient graph:  yes" in text and data["gradient_graph"] is True


@needs_torch
def test_a_layer_left_out_of_the_export_says_what_to_do(tmp_path, make_image, cli):
    path = tmp_path / "m.onnx"
    made = cli("export", "--weights", "random", "-o", path, "--style-layers", "relu1_1,relu2_1")
    assert made.exit_code == 0, made.stderr
    assert "content layers: relu1_1, relu1_2, relu2_1" in made.stdout  # all, by default
    result = cli("stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", path)
    assert result.error == (
        "error: unknown style layer 'relu3_1'; available: relu1_1, relu2_1 "
        "(not in this export; `nst-ort export` exports every layer of its network)"
    )


@needs_torch  # export asks for torch first
def test_cli_export_rejects_unknown_layers_in_one_line(tmp_path, cli):
    result = cli("export", "--weights", "random", "-o", tmp_path / "m.onnx", "--style-layers", "relu9_1")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown style layer 'relu9_1'; available: " + ", ".join(contract.loss_layers(Arch.VGG16))
    ]
    assert not (tmp_path / "m.onnx").exists()


def test_export_without_torch_names_the_extra(tmp_path, cli_process):
    result = cli_process("export", "--weights", "random", "-o", tmp_path / "m.onnx", hide=("torch",))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: nst-ort export needs torch: pip install 'nst-ort[export]'"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not onnx at all", "not an ONNX model"), (None, "not one written by `nst-ort export`")],
)
def test_info_on_wrong_models(tmp_path, content, message, cli):
    path = tmp_path / "x.onnx"
    if content is None:
        graph = onnx.helper.make_graph([], "g", [], [])
        onnx.save(onnx.helper.make_model(graph), str(path))
    else:
        path.write_bytes(content)
    result = cli("info", path)
    assert result.exit_code == 2
    assert message in result.error
