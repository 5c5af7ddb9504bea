"""The backend registry: names, lazy imports, and the factories' refusals."""

import subprocess
import sys

import pytest

from nst_ort import backends
from nst_ort.errors import NstError


def test_the_default_is_auto_which_falls_back_to_ort_graph():
    assert backends.DEFAULT == "auto" and list(backends.BACKENDS)[:2] == ["ort-graph", "ort-training"]
    assert backends.AUTO_ORDER[-1] == "ort-graph" and set(backends.AUTO_ORDER) <= set(backends.BACKENDS)
    assert backends.resolve("auto", "cuda") == "ort-graph"  # the bf16 backends run on the CPU only
    for name in backends.BACKENDS:
        assert backends.resolve(name, "cpu") == name


def test_auto_is_resolved_before_a_factory_is_asked_for():
    with pytest.raises(ValueError, match="resolve `backend` auto"):
        backends.factory("auto")


def test_an_unknown_backend_names_the_field_and_the_choices():
    choices = "auto, ort-graph, ort-training, openvino-bf16, ov-bf16"
    with pytest.raises(NstError, match=rf"^`backend` nope: not one of {choices}$"):
        backends.check_name("nope")


def test_every_backend_module_has_a_factory():
    for name in backends.BACKENDS:
        assert callable(backends.factory(name)), name


def test_the_registry_imports_no_backend_until_asked():
    code = (
        "import sys, nst_ort, nst_ort.cli\n"
        "modules = {'nst_ort.backends.graph', 'nst_ort.backends.training', 'nst_ort.backends.openvino',\n"
        "           'nst_ort.backends.openvino_runtime', 'openvino'}\n"
        "print(sorted(set(sys.modules) & modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
