"""One cell's work, wherever it runs: stylise, and hand back the image and the report.

Nothing is written here: the process that owns the sweep's folder writes every file
(sweep.write_cell), so a cell computed in a pool worker or on another machine of a Ray cluster
leaves nothing behind on its own, and a cell computed twice (a retried task) is written once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nst_ort.api import stylize
from nst_ort.config import Status
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import load_image
from nst_ort.loop import Callback
from nst_ort.studies.grid import Cell

CallbackFor = Callable[[Cell], Callback | None]  # a progress callback for the cell about to run


@dataclass
class CellResult:
    status: Status
    message: str
    image: np.ndarray | None  # (height, width, 3) float32 RGB in [0, 1]; None when the cell failed
    report: dict | None  # the run's report (Report.finish); None when the cell failed


def compute_cell(
    engine: Engine,
    cell: Cell,
    callback: Callback | None = None,
    data: tuple[bytes, bytes] | None = None,
) -> CellResult:
    """Stylise `cell.content` with `cell.style` at `cell.config`.

    `data`: the bytes of the content and the style file, where the files are on another machine;
    the images are decoded here and the report names them by the cell's paths all the same. Bad
    input (an NstError: an unreadable image, one too small for the size) fails this cell alone,
    with status FAILED; an interrupt or a non-finite loss comes back as stylize returns it.
    """
    try:
        if data is None:
            content, style = load_image(cell.content), load_image(cell.style)
        else:
            content, style = load_image(cell.content, data[0]), load_image(cell.style, data[1])
        result = stylize(content, [style], cell.config, callback=callback, engine=engine)
    except NstError as exc:
        return CellResult(Status.FAILED, str(exc), None, None)
    report = result.report.finish(result.status, result.message, None)
    report["inputs"].update(content=str(cell.content), styles=[str(cell.style)])
    return CellResult(result.status, result.message, result.image, report)
