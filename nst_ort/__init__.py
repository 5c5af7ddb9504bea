"""nst-ort: neural style transfer (Gatys, Ecker & Bethge 2015) on ONNX Runtime, without torch."""

from nst_ort.api import StylizeResult, stylize
from nst_ort.config import Device, InitKind, LossSpec, Optimizer, PreserveColors, StylizeConfig
from nst_ort.errors import NstError

__all__ = [
    "Device",
    "InitKind",
    "LossSpec",
    "NstError",
    "Optimizer",
    "PreserveColors",
    "StylizeConfig",
    "StylizeResult",
    "stylize",
]
