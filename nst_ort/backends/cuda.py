"""The CUDA and cuDNN libraries that the installed ONNX Runtime's CUDA execution provider opens.

The `cuda` extra installs them from PyPI as nvidia-* wheels (under site-packages/nvidia/*/lib),
where the dynamic loader does not look. Loading them with RTLD_GLOBAL before the CUDA execution
provider is created lets its own dlopen() find them by soname, so a machine with only an NVIDIA
driver runs the CUDA path. Which libraries depends on the CUDA version the build was made for
(ort.cuda_version()):

- 11: onnxruntime-training 1.19.2's GPU build (Python <= 3.11), CUDA 11.8 and cuDNN 8, from the
  nvidia-*-cu11 wheels that the extra names;
- 12: onnxruntime-gpu 1.19 to 1.26, CUDA 12 and cuDNN 9, from its own `cuda` and `cudnn` extras
  (nvidia-*-cu12 wheels, since 1.22);
- 13: onnxruntime-gpu 1.27 and later, CUDA 13 (site-packages/nvidia/cu13/lib) and cuDNN 9, the same way.

A build for another CUDA is left to the system's loader paths. A library found nowhere is a
one-line error naming it.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from nst_ort.errors import NstError


@dataclass(frozen=True)
class Libraries:
    required: tuple[str, ...]  # what onnxruntime_providers_cuda.so opens, dependencies first
    optional: tuple[str, ...]  # loaded where present
    wheels: str  # where the `cuda` extra gets them, for the error


BY_CUDA = {
    # Linked by onnxruntime_providers_cuda.so of onnxruntime-training 1.19.2. cuDNN 8 opens its
    # sub-libraries itself at run time; loaded ahead they are found by soname.
    11: Libraries(
        required=(
            "libcudart.so.11.0",
            "libcublasLt.so.11",
            "libcublas.so.11",
            "libcurand.so.10",
            "libcufft.so.10",
            "libcudnn.so.8",
        ),
        optional=(
            "libcudnn_ops_infer.so.8",
            "libcudnn_ops_train.so.8",
            "libcudnn_cnn_infer.so.8",
            "libcudnn_cnn_train.so.8",
            "libcudnn_adv_infer.so.8",
            "libcudnn_adv_train.so.8",
        ),
        wheels="CUDA 11.8 and cuDNN 8 wheels",
    ),
    # Linked by onnxruntime-gpu 1.26.0's provider; cuDNN 9 finds its sub-libraries beside itself.
    12: Libraries(
        required=(
            "libcudart.so.12",
            "libcublasLt.so.12",
            "libcublas.so.12",
            "libcurand.so.10",
            "libcufft.so.11",
            "libcudnn.so.9",
        ),
        optional=(),
        wheels="CUDA 12 and cuDNN 9 wheels",
    ),
    # onnxruntime-gpu 1.31.1's provider links the first four and opens cuDNN (the convolutions')
    # at run time; cuFFT it no longer links.
    13: Libraries(
        required=(
            "libcudart.so.13",
            "libcublasLt.so.13",
            "libcublas.so.13",
            "libcurand.so.10",
            "libcudnn.so.9",
        ),
        optional=("libcufft.so.12",),
        wheels="CUDA 13 and cuDNN 9 wheels",
    ),
}

# The NVIDIA driver's library, which every CUDA build opens; it comes with the driver, not a wheel.
DRIVER = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"

_loaded: dict[str, ctypes.CDLL] = {}


@functools.cache
def driver_present() -> bool:
    """Whether the NVIDIA driver is installed: without it no CUDA execution provider can start."""
    try:
        ctypes.CDLL(DRIVER)
    except OSError:
        return False
    return True


def libraries(cuda_version: str | None) -> Libraries | None:
    """What a build for `cuda_version` ('11.8', '12.8', '13.0') needs; None for one not known here."""
    major = (cuda_version or "").split(".")[0]
    return BY_CUDA.get(int(major)) if major.isdigit() else None


def pypi_library_dirs() -> list[Path]:
    """site-packages/nvidia/*/lib of the installed nvidia-* wheels."""
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


def preload(cuda_version: str | None, dirs: list[Path] | None = None) -> list[str]:
    """Load the libraries of a build for `cuda_version` (and the optional ones where present);
    return the names loaded so far."""
    needed = libraries(cuda_version)
    if needed is None:
        return list(_loaded)
    dirs = pypi_library_dirs() if dirs is None else dirs
    for name in needed.required:
        if name in _loaded:
            continue
        library = _load(name, dirs)
        if library is None:
            raise NstError(
                f"CUDA library {name} not found; install 'nst-ort[cuda]' ({needed.wheels}) "
                "or put it on LD_LIBRARY_PATH"
            )
        _loaded[name] = library
    for name in needed.optional:
        if name not in _loaded and (library := _load(name, dirs)) is not None:
            _loaded[name] = library
    return list(_loaded)
