"""The CUDA 11.8 / cuDNN 8 libraries that the onnxruntime-training GPU wheel links.

The `cuda` extra installs them from PyPI (the nvidia-*-cu11 wheels, under site-packages/nvidia/
*/lib), where the dynamic loader does not look. Loading them with RTLD_GLOBAL before the CUDA
execution provider is created lets its own dlopen() find them by soname, so a machine with only an
NVIDIA driver runs the CUDA path. A library found nowhere is a one-line error naming it.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

from nst_ort.errors import NstError

# What onnxruntime_providers_cuda.so of onnxruntime-training 1.19.2 links, dependencies first.
REQUIRED = (
    "libcudart.so.11.0",
    "libcublasLt.so.11",
    "libcublas.so.11",
    "libcurand.so.10",
    "libcufft.so.10",
    "libcudnn.so.8",
)
# cuDNN 8 opens its sub-libraries itself at run time; loaded ahead they are found by soname.
CUDNN_PARTS = (
    "libcudnn_ops_infer.so.8",
    "libcudnn_ops_train.so.8",
    "libcudnn_cnn_infer.so.8",
    "libcudnn_cnn_train.so.8",
    "libcudnn_adv_infer.so.8",
    "libcudnn_adv_train.so.8",
)

_loaded: dict[str, ctypes.CDLL] = {}


def pypi_library_dirs() -> list[Path]:
    """site-packages/nvidia/*/lib of the installed nvidia-*-cu11 wheels."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(lib for root in spec.submodule_search_locations for lib in Path(root).glob("*/lib"))


def _load(name: str, dirs: list[Path]) -> ctypes.CDLL | None:
    for folder in dirs:
        if (folder / name).exists():
            return ctypes.CDLL(str(folder / name), mode=ctypes.RTLD_GLOBAL)
    try:  # the system's own (LD_LIBRARY_PATH, ldconfig)
        return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None


def preload(dirs: list[Path] | None = None) -> list[str]:
    """Load every required library (and cuDNN's parts where present); return their names."""
    dirs = pypi_library_dirs() if dirs is None else dirs
    for name in REQUIRED:
        if name in _loaded:
            continue
        library = _load(name, dirs)
        if library is None:
            raise NstError(
                f"CUDA library {name} not found; install 'nst-ort[cuda]' (CUDA 11.8 and cuDNN 8 "
                "wheels) or put it on LD_LIBRARY_PATH"
            )
        _loaded[name] = library
    for name in CUDNN_PARTS:
        if name not in _loaded and (library := _load(name, dirs)) is not None:
            _loaded[name] = library
    return list(_loaded)
