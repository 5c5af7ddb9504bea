"""The ONNX Runtime import, its devices and session options, in one place.

Both onnxruntime-training wheels install the module `onnxruntime`; when neither is installed
the user is told which extra to install instead of meeting an ImportError.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
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

INSTALL_HINT = (
    "install an ONNX Runtime: pip install 'nst-ort[cpu]' (or 'nst-ort[cuda]' for NVIDIA GPUs, "
    "or 'nst-ort[ort]': plain onnxruntime, for `backend` ort-graph only)"
)


def require_ort():
    if ort is None:
        raise NstError(f"onnxruntime is not installed; {INSTALL_HINT}")
    return ort


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
    if not has_training():
        raise NstError(
            "this onnxruntime has no training API; install 'nst-ort[cpu]' or 'nst-ort[cuda]' "
            "(onnxruntime-training 1.19.2, Python <= 3.12)"
        )


def cuda_available() -> bool:
    return ort is not None and "CUDAExecutionProvider" in ort.get_available_providers()


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when the CUDA execution provider is present, else 'cpu'."""
    require_ort()
    if requested == "cuda" and not cuda_available():
        raise NstError(
            "`device` cuda: this onnxruntime has no CUDA execution provider "
            f"(it has {', '.join(ort.get_available_providers())}); install 'nst-ort[cuda]'"
        )
    device = ("cuda" if cuda_available() else "cpu") if requested == "auto" else requested
    if device == "cuda":
        from nst_ort.backends.cuda import preload

        preload()  # the CUDA EP's libraries, before any session is created
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
