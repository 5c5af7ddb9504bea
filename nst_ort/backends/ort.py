"""The ONNX Runtime import, its devices and session options, in one place.

Every ONNX Runtime package (onnxruntime, onnxruntime-gpu and the two onnxruntime-training ones)
installs the module `onnxruntime`: the `cpu` and `cuda` extras pick one per Python, the training
build where it has wheels (pyproject.toml). When none is installed, when two are, or when the one
installed lacks what a backend or device needs, the user is told what to install instead of
meeting an ImportError.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path

from nst_ort.errors import NstError


def _import_onnxruntime():
    """Import onnxruntime without the torch that its training build would load.

    In the training wheels, `import onnxruntime` tries ORTModule (torch-based training) and
    `onnxruntime/training/__init__.py` imports torch's optimisers: where torch is installed that
    loads it (seconds of start-up), where it is not the training package fails to import, although
    the wheels do not depend on torch and the on-device training API used here needs none of it.
    So the training package is registered from its files without running its __init__, and
    ORTModule is marked absent, before onnxruntime itself is imported.
    """
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        return None
    training = Path(spec.origin).parent / "training"
    if (training / "__init__.py").is_file() and "onnxruntime.training" not in sys.modules:
        training_spec = importlib.util.spec_from_file_location(
            "onnxruntime.training", training / "__init__.py", submodule_search_locations=[str(training)]
        )
        sys.modules["onnxruntime.training"] = importlib.util.module_from_spec(training_spec)
        sys.modules.setdefault("onnxruntime.training.ortmodule", None)
    import onnxruntime

    # The training build's gradient builder logs every graph rewrite at INFO otherwise.
    onnxruntime.set_default_logger_severity(3)
    return onnxruntime


try:
    ort = _import_onnxruntime()
except ImportError:  # a broken installation reads as a missing one
    ort = None

INSTALL_HINT = "install one: pip install 'nst-ort[cpu]' (or 'nst-ort[cuda]' for NVIDIA GPUs)"
# The packages that install the module `onnxruntime`; two in one environment overwrite each other.
PACKAGES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-training",
    "onnxruntime-training-cpu",
)
LAST_TRAINING_PYTHON = (3, 12)  # onnxruntime-training-cpu 1.19.2, its last release


@functools.cache
def installed_packages() -> tuple[str, ...]:
    found = []
    for name in PACKAGES:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return tuple(found)


def require_ort():
    if ort is None:
        raise NstError(f"onnxruntime is not installed; {INSTALL_HINT}")
    if len(found := installed_packages()) > 1:
        raise NstError(
            f"{' and '.join(found)} are installed together and overwrite each other's module "
            f"`onnxruntime`: pip uninstall -y {' '.join(found)}, then {INSTALL_HINT}"
        )
    return ort


def _build_info():
    """onnxruntime.capi.build_and_package_info: the package's name, the CUDA version it was built for."""
    require_ort()
    try:
        return importlib.import_module("onnxruntime.capi.build_and_package_info")
    except ImportError:
        return None


def package_name() -> str:
    """The installed ONNX Runtime's package: onnxruntime, onnxruntime-gpu, onnxruntime-training(-cpu)."""
    return getattr(_build_info(), "package_name", "onnxruntime")


def cuda_version() -> str | None:
    """The CUDA version the installed ONNX Runtime was built for ('11.8', '13.0'); None for CPU builds."""
    return getattr(_build_info(), "cuda_version", None) or None


def training_module(name: str):
    """`onnxruntime.training.<name>`: api, artifacts or onnxblock (see _import_onnxruntime)."""
    require_ort()
    return importlib.import_module(f"onnxruntime.training.{name}")


def has_training() -> bool:
    try:
        training_module("api")
    except ImportError:
        return False
    return True


def require_training():
    require_ort()
    if has_training():
        return
    this = (
        f"this onnxruntime ({package_name()} {ort.__version__}) has no training API, "
        "which the ort-training backend needs"
    )
    if sys.version_info[:2] > LAST_TRAINING_PYTHON:
        raise NstError(
            f"{this}, and onnxruntime-training has no wheels for Python "
            f"{sys.version_info.major}.{sys.version_info.minor}: use the ort-graph backend, "
            "or Python 3.10-3.12 with 'nst-ort[cpu]'"
        )
    raise NstError(
        f"{this}: pip uninstall -y {package_name()}, then pip install 'nst-ort[cpu]' "
        "(onnxruntime-training-cpu 1.19.2); or use the ort-graph backend"
    )


def cuda_available() -> bool:
    """The CUDA execution provider is built in, and the NVIDIA driver is there to run it."""
    from nst_ort.backends.cuda import driver_present

    return ort is not None and "CUDAExecutionProvider" in ort.get_available_providers() and driver_present()


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when the CUDA execution provider can run here, else 'cpu'."""
    require_ort()
    if requested == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise NstError(
            "`device` cuda: this onnxruntime has no CUDA execution provider "
            f"({package_name()} {ort.__version__} has {', '.join(ort.get_available_providers())}); "
            f"pip uninstall -y {package_name()}, then pip install 'nst-ort[cuda]'"
        )
    if requested == "cuda" and not cuda_available():
        from nst_ort.backends.cuda import DRIVER

        raise NstError(
            f"`device` cuda: no NVIDIA driver here ({DRIVER} not found); install one, or use `device` cpu"
        )
    device = ("cuda" if cuda_available() else "cpu") if requested == "auto" else requested
    if device == "cuda":
        from nst_ort.backends.cuda import preload

        preload(cuda_version())  # the CUDA EP's libraries, before any session is created
    return device


def providers(device: str) -> list[str]:
    if device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session_options(threads: int = 0):
    options = require_ort().SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's business
    if threads:
        options.intra_op_num_threads = threads
    return options
