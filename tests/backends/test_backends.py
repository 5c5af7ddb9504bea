"""The backend registry: names, lazy imports, and the factories' refusals."""

import subprocess
import sys

import pytest

from nst_ort import backends
from nst_ort.errors import NstError


def test_the_default_is_the_first_registered():
    assert backends.DEFAULT == "ort-graph" and list(backends.BACKENDS)[:2] == ["ort-graph", "ort-training"]


def test_an_unknown_backend_names_the_field_and_the_choices():
    with pytest.raises(NstError, match=r"^`backend` nope: not one of ort-graph, ort-training$"):
        backends.check_name("nope")


def test_every_backend_module_has_a_factory():
    for name in backends.BACKENDS:
        assert callable(backends.factory(name)), name


def test_the_registry_imports_no_backend_until_asked():
    code = (
        "import sys, nst_ort, nst_ort.cli\n"
        "print(sorted(set(sys.modules) & {'nst_ort.backends.graph', 'nst_ort.backends.training'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
