"""The prologue every run shares: validate, load the model and the images, check what must fit.

`prepare(config, content, styles)` is the one place where stylize (api.py), reconstructions
(studies/reconstruct.py) and bundles (bundle/write.py) turn a config and images into a `Run`:
everything is checked before the first evaluation, so a bad option, file or size costs no
optimisation and leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst_ort.config import InitKind, StylizeConfig, validate
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.imageio import fit_longest, load_image
from nst_ort.report import Report
from nst_ort.targets import style_for_run
from nst_ort.tiles.budget import resolve

ImageLike = Path | str | np.ndarray


def as_image(image: ImageLike) -> np.ndarray:
    """(height, width, 3) float32 RGB in [0, 1], from a file or an array."""
    if isinstance(image, np.ndarray):
        return np.asarray(image, np.float32)
    return load_image(Path(image))


def source_name(image: ImageLike) -> str:
    """How a report names an input: its path as given, or 'array'."""
    return "array" if isinstance(image, np.ndarray) else str(image)


def blend_weights(blend: tuple[float, ...] | None, count: int) -> list[float]:
    """The style images' weights, normalised to sum to one (equal when not given)."""
    if blend is None:
        return [1.0 / count] * count
    total = float(sum(blend))
    return [w / total for w in blend]


@dataclass(frozen=True)
class Run:
    """A checked run, ready for its passes: the engine, the images as loaded, the blend."""

    config: StylizeConfig
    engine: Engine
    content: np.ndarray | None  # full size: each pass resizes from it, never from a smaller copy
    styles: list[np.ndarray]
    blend: list[float]
    frame: tuple[int, int]  # the (height, width) whose aspect ratio every pass keeps
    sources: dict  # how the report names the inputs

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the output."""
        return fit_longest(*self.frame, self.config.size)

    def report(self, inputs: dict | None = None) -> Report:
        """A report of this run: config, model, device, backend, and the inputs (`inputs` or the sources)."""
        described = {**(self.sources if inputs is None else inputs), "size": list(self.size)}
        engine = self.engine
        return Report(self.config, engine.model_info, engine.device, described, engine.backend)


def prepare(
    config: StylizeConfig,
    content: ImageLike | None,
    styles: list[ImageLike],
    engine: Engine | None = None,
    tiled: bool = True,
) -> Run:
    """Validate `config`, build the engine (or use `engine`), load the images, check the memory.

    `content` may be None for a run without a content image (a style reconstruction); the loss
    and the start must then not need one. A run that may be `tiled` gets its `tile` chosen
    (tiles.resolve) where it is 0 and the largest pass does not fit whole; one that may not (a
    bundle) must fit whole.
    """
    validate(config, styles=len(styles))  # what needs no model fails before the model loads
    engine = engine or Engine(config.model, config.device, config.threads, backend=config.backend)
    content_image = None if content is None else as_image(content)
    style_images = [as_image(style) for style in styles]
    first = content_image if content_image is not None else (style_images or [None])[0]
    if first is None:
        raise NstError("no image given: a run needs a content or a style image")
    frame = first.shape[:2]
    validate(config, engine.model_info, len(style_images), frame)
    if config.loss.content_layers and content_image is None:
        raise NstError("a content loss needs a content image")
    if config.init is InitKind.CONTENT and content_image is None:
        raise NstError("`init` content needs a content image")
    if (config.loss.style_layers or config.init is InitKind.STYLE) and not style_images:
        raise NstError("at least one style image is needed")
    if tiled:
        config = resolve(engine, config, frame)  # the tiles, or the largest pass whole, must fit
    else:
        engine.check_memory(config.loss, *fit_longest(*frame, config.size))  # the largest pass, up front
    # After the memory checks: a size that cannot run is refused before its style image is resized.
    style_images = [
        style_for_run(style, config.size, config.style_scale, config.style_blur) for style in style_images
    ]
    sources = {"content": None if content is None else source_name(content)}
    sources["styles"] = [source_name(style) for style in styles]
    blend = blend_weights(config.style_blend, len(style_images)) if style_images else []
    return Run(config, engine, content_image, style_images, blend, frame, sources)
