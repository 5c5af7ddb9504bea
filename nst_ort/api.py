"""The Python API: `stylize(content, styles, config)` returns the image and the report.

>>> from nst_ort import stylize, StylizeConfig
>>> result = stylize("photo.jpg", ["painting.jpg"], StylizeConfig(size=256))
>>> result.image.shape  # (height, width, 3), float32 RGB in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst_ort import colors
from nst_ort.config import StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import fit_longest, load_image
from nst_ort.loop import Callback
from nst_ort.report import Report
from nst_ort.scales import PassCallback, plan, run_passes

ImageLike = Path | str | np.ndarray


@dataclass
class StylizeResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1]
    status: str  # done | converged | interrupted | nonfinite
    message: str
    report: Report


def as_image(image: ImageLike) -> np.ndarray:
    if isinstance(image, np.ndarray):
        return np.asarray(image, np.float32)
    return load_image(Path(image))


def _source(image: ImageLike) -> str:
    return "array" if isinstance(image, np.ndarray) else str(image)


def normalized_blend(blend: tuple[float, ...] | None, count: int) -> list[float]:
    if blend is None:
        return [1.0 / count] * count
    if len(blend) != count:
        raise NstError(f"--style-blend has {len(blend)} weights for {count} style images")
    if any(w < 0 for w in blend) or sum(blend) <= 0:
        raise NstError("--style-blend weights must be non-negative and not all zero")
    total = float(sum(blend))
    return [w / total for w in blend]


def stylize(
    content: ImageLike,
    styles: list[ImageLike],
    config: StylizeConfig | None = None,
    callback: Callback | None = None,
    engine: Engine | None = None,
    on_pass: PassCallback | None = None,
    resume: tuple[np.ndarray, int] | None = None,
    sources: tuple[Path, list[Path]] | None = None,
) -> StylizeResult:
    """Stylise `content` with `styles`; the returned report says how it went.

    `config.scales` makes it coarse-to-fine (see scales.py); `on_pass` is told of each pass
    before it starts, `callback` of every iteration. An interrupt (Ctrl-C) or a non-finite loss
    does not raise: the result carries the last good image with status 'interrupted' or
    'nonfinite', so nothing computed is lost. `resume` is (image, steps done) of an interrupted
    run: it continues from there for the steps left. `sources` names the files in the report
    when the images are given as arrays.
    """
    config = config or StylizeConfig()
    if not styles:
        raise NstError("at least one style image is needed")
    if config.size < 16:
        raise NstError(f"--size {config.size} is too small; at least 16 px")
    plan(config)  # bad scales fail before the model loads
    engine = engine or Engine(config.model, config.device.value, config.threads, backend=config.backend)
    content_image = as_image(content)
    style_images = [as_image(s) for s in styles]
    blend = normalized_blend(config.style_blend, len(style_images))
    frame = content_image.shape[:2]
    engine.check_layers(config.loss)
    engine.check_memory(config.loss, *fit_longest(*frame, config.size))  # the largest pass, up front
    report = Report(
        config,
        engine.model_info,
        engine.device,
        {
            "content": sources[0] if sources else _source(content),
            "styles": sources[1] if sources else [_source(s) for s in styles],
            "size": list(fit_longest(*frame, config.size)),
        },
    )
    net_content, net_styles = colors.prepare(config.preserve_colors, content_image, style_images)
    result = run_passes(
        engine, config, net_content, net_styles, blend, frame, report, callback, on_pass, resume
    )
    image = colors.finish(config.preserve_colors, result.image, content_image)
    return StylizeResult(image, result.status, result.message, report)
