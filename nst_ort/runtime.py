"""The ONNX Runtime import, its devices and session options, in one place.

Both onnxruntime-training wheels install the module `onnxruntime`; when neither is installed
the user is told which extra to install instead of meeting an ImportError.
"""

from __future__ import annotations

from nst_ort.errors import NstError

try:
    import onnxruntime as ort
except ImportError:  # pragma: no cover - exercised in a subprocess test
    ort = None
else:
    # The training build's gradient builder logs every graph rewrite at INFO on stderr.
    ort.set_default_logger_severity(3)

INSTALL_HINT = (
    "install an ONNX Runtime: pip install 'nst-ort[cpu]' (or 'nst-ort[cuda]' for NVIDIA GPUs, "
    "or 'nst-ort[ort]': plain onnxruntime, for --backend ort-graph only)"
)


def require_ort():
    if ort is None:
        raise NstError(f"onnxruntime is not installed; {INSTALL_HINT}")
    return ort


def has_training() -> bool:
    try:
        from onnxruntime.training import api  # noqa: F401
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
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise NstError(
            "--device cuda: this onnxruntime has no CUDA execution provider "
            f"(it has {', '.join(ort.get_available_providers())}); install 'nst-ort[cuda]'"
        )
    return requested


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
