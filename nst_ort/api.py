"""The Python API: `stylize(content, styles, config)` returns the image and the report.

>>> from nst_ort import stylize, StylizeConfig
>>> result = stylize("photo.jpg", ["painting.jpg"], StylizeConfig(size=256))
>>> result.image.shape  # (height, width, 3), float32 RGB in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nst_ort import colors
from nst_ort.config import Status, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.loop import Callback
from nst_ort.passes import PassCallback, run_passes
from nst_ort.report import Report
from nst_ort.run import ImageLike, Run, prepare
from nst_ort.tiles import Tiling


@dataclass
class StylizeResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1]
    status: Status
    message: str
    report: Report


def stylize(
    content: ImageLike,
    styles: list[ImageLike],
    config: StylizeConfig | None = None,
    callback: Callback | None = None,
    engine: Engine | None = None,
    on_pass: PassCallback | None = None,
    resume: tuple[np.ndarray, int] | None = None,
    tiling: Tiling | None = None,
) -> StylizeResult:
    """Stylise `content` with `styles`; the returned report says how it went.

    `config.scales` makes it coarse-to-fine (see passes.py); `on_pass` is told of each pass
    before it starts, `callback` of every iteration. An interrupt (Ctrl-C) or a non-finite loss
    does not raise: the result carries the last good image with status INTERRUPTED or
    NONFINITE, so nothing computed is lost. `resume` is (image, steps done) of an interrupted
    run: it continues from there for the steps left. A pass larger than `config.tile` runs in
    tiles (nst_ort/tiles/): `tiling` says who hears of them, what an interrupted run left, where
    they run.
    """
    run = prepare(config or StylizeConfig(), content, styles, engine)
    return stylize_run(run, callback, on_pass, resume, tiling)


def stylize_run(
    run: Run,
    callback: Callback | None = None,
    on_pass: PassCallback | None = None,
    resume: tuple[np.ndarray, int] | None = None,
    tiling: Tiling | None = None,
) -> StylizeResult:
    """`stylize` on a prepared run (run.prepare), for callers that show something in between."""
    report = run.report()
    mode = run.config.preserve_colors
    net_content, net_styles = colors.prepare(mode, run.content, run.styles)
    result = run_passes(run, net_content, net_styles, report, callback, on_pass, resume, tiling)
    image = colors.finish(mode, result.image, run.content, run.styles, run.blend)
    return StylizeResult(image, result.status, result.message, report)
