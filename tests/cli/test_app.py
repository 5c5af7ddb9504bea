"""main(): library errors as one line naming the option, usage errors, and the exit codes."""

import sys

import pytest

from nst_ort.cli.options import as_options
from tests.requires import needs_training


def test_config_fields_become_options():
    actual = as_options("`style_blend` has 2 weights; `scale_iterations`: …; run `nst-ort export` and `loss`")
    desired = "--style-blend has 2 weights; --scale-iterations: …; run `nst-ort export` and `loss`"
    assert actual == desired


@pytest.mark.parametrize(
    ("command", "option", "value"),
    [
        ("stylize", "--style-weight", "nan"),
        ("stylize", "--lr", "inf"),
        # `nst-ort bundle` refuses to start without onnxruntime-training before it reads options.
        pytest.param("bundle", "--tv-weight", "nan", marks=needs_training),
    ],
)
def test_non_finite_options_are_refused(tiny_model, make_image, tmp_path, command, option, value, cli):
    output = tmp_path / ("o.png" if command == "stylize" else "bundle")
    result = cli(
        command, make_image(), make_image("s.png"), "-o", output, "--model", tiny_model, option, value
    )
    assert result.exit_code == 2
    assert result.error == f"error: {option} {value}: must be a finite number"
    assert not output.exists()


@pytest.mark.parametrize("typed", ["x\x85", "x\ny", "x\u2028y"])
def test_an_error_quoting_a_line_break_stays_one_line(tiny_model, make_image, tmp_path, cli, typed):
    result = cli(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--style-blend", typed, "--size", "32", "--iterations", "1",
    )  # fmt: skip
    assert result.exit_code == 2
    actual = result.stderr.strip().splitlines()
    desired = f"error: --style-blend: expected comma-separated numbers, got '{ascii(typed)[1:-1]}'"
    assert actual == [desired]


def test_a_mistyped_option_is_a_usage_error(cli):
    result = cli("stylize", "--sise", "64")
    assert result.exit_code == 2
    assert "No such option: --sise" in result.stderr and "Traceback" not in result.stderr


def test_no_command_shows_the_commands(cli):
    result = cli()
    assert result.exit_code in (0, 2)  # click's no_args_is_help: 0 or 2 depending on its version
    for command in (
        "export",
        "info",
        "stylize",
        "resume",
        "reconstruct",
        "sweep",
        "batch",
        "bundle",
        "run-bundle",
    ):
        assert command in result.stdout + result.stderr


def test_the_script_exits_with_mains_code(tmp_path, cli_process):
    """The console script's process: a bad input's one line and exit code 2, no traceback."""
    result = cli_process("info", tmp_path / "missing.onnx")
    assert result.returncode == 2
    desired = (
        f"error: {tmp_path / 'missing.onnx'}: no such model file; run `nst-ort export` first or pass --model"
    )
    assert result.stderr.strip() == desired


def test_console_script_points_at_main():
    import re
    from pathlib import Path

    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    module, name = re.search(r'^nst-ort = "([\w.]+):(\w+)"$', pyproject, re.MULTILINE).groups()
    __import__(module)
    assert getattr(sys.modules[module], name).__module__ == "nst_ort.cli.app"
