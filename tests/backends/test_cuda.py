"""The CUDA library preloader, with real shared libraries standing in for CUDA's: which libraries
each CUDA build of ONNX Runtime gets, and from where. (No GPU is needed, nor used.)"""

import ctypes.util
import shutil
from pathlib import Path

import pytest

from nst_ort.backends import cuda, ort
from nst_ort.errors import NstError

# The CUDA version in each build's onnxruntime/capi/build_and_package_info.py.
TRAINING_GPU, GPU_CUDA12, GPU_CUDA13 = "11.8", "12.8", "13.0"


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


def stand_ins(folder: Path, names) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(real_library(), folder / name)
    return folder


@pytest.mark.parametrize(
    ("version", "runtime", "cudnn"),
    [
        (TRAINING_GPU, "libcudart.so.11.0", "libcudnn.so.8"),
        (GPU_CUDA12, "libcudart.so.12", "libcudnn.so.9"),
        (GPU_CUDA13, "libcudart.so.13", "libcudnn.so.9"),
    ],
)
def test_each_cuda_build_gets_its_own_libraries(version, runtime, cudnn):
    needed = cuda.libraries(version)
    assert needed.required[0] == runtime and cudnn in needed.required


@pytest.mark.parametrize("version", [None, "", "14.0", "unknown"])
def test_another_build_loads_nothing(version, fresh, tmp_path):
    assert cuda.libraries(version) is None
    assert cuda.preload(version, [tmp_path]) == []


def test_preload_loads_each_library_from_the_wheel_folders(tmp_path, fresh):
    needed = cuda.libraries(TRAINING_GPU)
    lib = stand_ins(tmp_path / "nvidia" / "cudnn" / "lib", (*needed.required, "libcudnn_ops_infer.so.8"))
    assert cuda.preload(TRAINING_GPU, [lib]) == [*needed.required, "libcudnn_ops_infer.so.8"]


def test_cuda13_layout_one_folder_for_cuda_one_for_cudnn(tmp_path, fresh, monkeypatch):
    """onnxruntime-gpu 1.27+'s wheels: nvidia/cu13/lib (CUDA 13 in one wheel) and nvidia/cudnn/lib."""
    needed = cuda.libraries(GPU_CUDA13)
    cudnn = [name for name in needed.required if "cudnn" in name]
    stand_ins(tmp_path / "nvidia" / "cu13" / "lib", [n for n in needed.required if n not in cudnn])
    stand_ins(tmp_path / "nvidia" / "cudnn" / "lib", cudnn)
    monkeypatch.syspath_prepend(str(tmp_path))
    dirs = cuda.pypi_library_dirs()
    assert {tmp_path / "nvidia" / "cu13" / "lib", tmp_path / "nvidia" / "cudnn" / "lib"} <= set(dirs)
    assert cuda.preload(GPU_CUDA13, dirs) == list(needed.required)  # cuFFT is optional


@pytest.mark.parametrize(
    ("version", "missing", "wheels"),
    [(TRAINING_GPU, "libcublas.so.11", "CUDA 11.8 and cuDNN 8"), (GPU_CUDA12, "libcublas.so.12", "CUDA 12")],
)
def test_a_missing_library_is_named(tmp_path, fresh, version, missing, wheels):
    lib = stand_ins(tmp_path / "lib", cuda.libraries(version).required[:2])
    with pytest.raises(
        NstError, match=rf"CUDA library {missing} not found; install 'nst-ort\[cuda\]' \({wheels}"
    ):
        cuda.preload(version, [lib])


@pytest.fixture
def gpu_build(monkeypatch):
    """This onnxruntime as a GPU build would show itself: the CUDA provider listed."""
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort.require_ort(), "get_available_providers", lambda: providers)
    monkeypatch.setattr(ort, "cuda_version", lambda: GPU_CUDA13)


def test_without_the_nvidia_driver_auto_is_the_cpu(gpu_build, monkeypatch):
    monkeypatch.setattr(cuda, "driver_present", lambda: False)
    assert ort.resolve_device("auto") == "cpu"
    with pytest.raises(NstError, match=rf"^`device` cuda: no NVIDIA driver here \({cuda.DRIVER} not found\)"):
        ort.resolve_device("cuda")


def test_with_the_driver_the_installed_builds_libraries_are_preloaded(gpu_build, monkeypatch):
    seen = []
    monkeypatch.setattr(cuda, "driver_present", lambda: True)
    monkeypatch.setattr(cuda, "preload", seen.append)
    assert ort.resolve_device("auto") == "cuda" and ort.resolve_device("cuda") == "cuda"
    assert seen == [GPU_CUDA13, GPU_CUDA13]
