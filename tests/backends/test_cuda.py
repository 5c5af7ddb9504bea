"""The CUDA library preloader, with real shared libraries standing in for CUDA's."""

import ctypes.util
import shutil
from pathlib import Path

import pytest

from nst_ort.backends import cuda
from nst_ort.errors import NstError


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(cuda, "_loaded", {})


def real_library() -> Path:
    found = ctypes.util.find_library("z") or ctypes.util.find_library("m")
    for folder in (
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib64",
        "/usr/lib",
    ):
        if found and (Path(folder) / found).exists():
            return Path(folder) / found
    pytest.skip("no shared library to stand in for CUDA's")


def test_preload_loads_each_library_from_the_wheel_folders(tmp_path, fresh):
    lib = tmp_path / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    for name in (*cuda.REQUIRED, "libcudnn_ops_infer.so.8"):
        shutil.copy(real_library(), lib / name)
    actual = cuda.preload([lib])
    assert actual == [*cuda.REQUIRED, "libcudnn_ops_infer.so.8"]


def test_a_missing_library_is_named(tmp_path, fresh):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in cuda.REQUIRED[:2]:
        shutil.copy(real_library(), lib / name)
    with pytest.raises(NstError, match=r"CUDA library libcublas.so.11 not found; install 'nst-ort\[cuda\]'"):
        cuda.preload([lib])
