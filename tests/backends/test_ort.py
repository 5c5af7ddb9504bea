"""The ONNX Runtime import's refusals: each one line that names what to install."""

import sys

import pytest

from nst_ort.backends import ort
from nst_ort.errors import NstError


def test_this_environment_has_one_onnxruntime_package():
    assert ort.installed_packages() == (ort.package_name(),)


def test_two_onnxruntime_packages_are_refused(monkeypatch):
    monkeypatch.setattr(ort, "installed_packages", lambda: ("onnxruntime", "onnxruntime-training-cpu"))
    with pytest.raises(NstError) as error:
        ort.require_ort()
    assert str(error.value) == (
        "onnxruntime and onnxruntime-training-cpu are installed together and overwrite each other's "
        "module `onnxruntime`: pip uninstall -y onnxruntime onnxruntime-training-cpu, then install one: "
        "pip install 'nst-ort[cpu]' (or 'nst-ort[cuda]' for NVIDIA GPUs)"
    )


@pytest.mark.parametrize(
    ("last", "fix"),
    [
        # Python <= 3.12: the training build has wheels; it replaces the plain one.
        (
            (9, 99),
            r": pip uninstall -y \S+, then pip install 'nst-ort\[cpu\]' \(onnxruntime-training-cpu 1.19.2\)",
        ),
        # Python 3.13 and later: it has none.
        ((3, 0), r", and onnxruntime-training has no wheels for Python 3\.\d+: use the ort-graph backend"),
    ],
)
def test_ort_training_without_the_training_build_names_the_fix(monkeypatch, last, fix):
    monkeypatch.setattr(ort, "has_training", lambda: False)
    monkeypatch.setattr(ort, "LAST_TRAINING_PYTHON", last)
    this = r"^this onnxruntime \(\S+ \S+\) has no training API, which the ort-training backend needs"
    with pytest.raises(NstError, match=this + fix) as error:
        ort.require_training()
    assert "\n" not in str(error.value)


def test_the_command_line_says_so_in_one_line(tiny_model, make_image, tmp_path, cli_process):
    result = cli_process(
        "stylize", make_image(), make_image("s.png"), "-o", tmp_path / "o.png", "--model", tiny_model,
        "--backend", "ort-training", hide=("torch", "onnxruntime.training"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: this onnxruntime (") and "has no training API" in line
    fix = "pip install 'nst-ort[cpu]'" if sys.version_info < (3, 13) else "use the ort-graph backend"
    assert fix in line
    assert not (tmp_path / "o.png").exists()
