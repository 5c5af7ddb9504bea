"""The on-disk cache of onnxruntime-training artifacts: hits, rebuilds, concurrent builders."""

import os
import subprocess
import sys

from nst_ort.backends import artifacts
from nst_ort.config import LossSpec
from nst_ort.model import load_model
from tests.requires import needs_training

pytestmark = needs_training


def test_artifacts_are_cached_and_rebuilt_when_damaged(tiny_model, tmp_path):
    model, info = load_model(tiny_model)
    spec = LossSpec()
    first = artifacts.ensure(model, info.sha256, spec, 32, 40, tmp_path)
    second = artifacts.ensure(model, info.sha256, spec, 32, 40, tmp_path)
    assert first.built and not second.built and second.directory == first.directory
    other = artifacts.ensure(model, info.sha256, spec, 40, 32, tmp_path)
    assert other.built and other.directory != first.directory
    with open(first.training_model, "r+b") as handle:  # a half-written file
        handle.truncate(100)
    third = artifacts.ensure(model, info.sha256, spec, 32, 40, tmp_path)
    assert third.built
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_concurrent_builds_of_one_entry(tiny_model, tmp_path):
    code = (
        "import sys; from pathlib import Path\n"
        "from nst_ort.backends import artifacts\nfrom nst_ort.config import LossSpec\n"
        "from nst_ort.model import load_model\n"
        "m, info = load_model(Path(sys.argv[1]))\n"
        "a = artifacts.ensure(m, info.sha256, LossSpec(), 24, 24, Path(sys.argv[2]))\n"
        "print(a.directory)\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tiny_model), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert outputs[0][0] == outputs[1][0]
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(outputs[0][0].strip())]
