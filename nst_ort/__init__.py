"""nst-ort: neural style transfer (Gatys, Ecker & Bethge 2015) on ONNX Runtime, without torch.

The package's folders follow the data: contract.py (the names an export and the runtime share),
config.py (what a run is asked to do), model.py and graphs.py (an export and the graphs cut
from it), targets.py, backends/ (where the gradient comes from), engine.py, run.py (the checks
before a run), passes.py and loop.py (the optimisation), imageio.py and colors.py (images);
api.py, studies/ and bundle/ are the front ends for Python, cli/ the one for the shell.
"""

from nst_ort.api import StylizeResult, stylize
from nst_ort.bundle import make_bundle
from nst_ort.config import Device, InitKind, LossSpec, Optimizer, PreserveColors, Status, StylizeConfig
from nst_ort.errors import NstError
from nst_ort.studies.reconstruct import ReconstructKind, reconstruct

__all__ = [
    "Device",
    "InitKind",
    "LossSpec",
    "NstError",
    "Optimizer",
    "PreserveColors",
    "ReconstructKind",
    "Status",
    "StylizeConfig",
    "StylizeResult",
    "make_bundle",
    "reconstruct",
    "stylize",
]
