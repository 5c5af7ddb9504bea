"""The backend registry: names, lazy imports, and the factories' refusals."""

import subprocess
import sys

import pytest

from nst_ort import backends
from nst_ort.errors import NstError


def test_the_default_is_the_first_registered():
    assert backends.DEFAULT == "ort-graph" and list(backends.BACKENDS)[:2] == ["ort-graph", "ort-training"]


def test_an_unknown_backend_names_the_field_and_the_choices():
    choices = "ort-graph, ort-training, openvino-bf16"
    with pytest.raises(NstError, match=rf"^`backend` nope: not one of {choices}$"):
        backends.check_name("nope")


def test_every_backend_module_has_a_factory():
    for name in backends.BACKENDS:
        assert callable(backends.factory(name)), name


def test_the_registry_imports_no_backend_until_asked():
    code = (
        "import sys, nst_ort, nst_ort.cli\n"
        "modules = {'nst_ort.backends.graph', 'nst_ort.backends.training', 'nst_ort.backends.openvino'}\n"
        "print(sorted(set(sys.modules) & modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
