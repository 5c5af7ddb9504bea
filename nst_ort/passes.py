"""The passes of one run: one at the output size, or coarse-to-fine over several sizes.

Coarse-to-fine optimises at a small size first and starts each larger pass from the previous
result, upsampled. An evaluation costs in proportion to the pixel count, so the many iterations
that take the image from noise to a stylised picture run cheaply at a small size, and the
larger sizes only add detail. Content and style targets are recomputed for every size, and
Adam's moments follow the image from one size to the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst_ort import tiles
from nst_ort.config import InitKind, Status, StylizeConfig, pass_sizes
from nst_ort.engine import PassInfo
from nst_ort.errors import NstError
from nst_ort.imageio import fit_longest, from_nchw, load_image, resize, to_nchw
from nst_ort.loop import AdamState, Callback, LoopResult
from nst_ort.report import Report
from nst_ort.run import Run

# The first pass gets this many shares of `iterations`: it builds the picture's composition from
# its start, the later ones add detail to an upsampled result (style-transfer-pytorch gives its
# first scale twice the iterations of each later one).
FIRST_SHARES = 2


@dataclass(frozen=True)
class Pass:
    """One planned pass: its index among `count`, its longest side and its iterations."""

    index: int
    count: int
    size: int
    iterations: int


@dataclass
class PassesResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1], at the last pass's size
    status: Status
    message: str


PassCallback = Callable[[Pass], None]


def default_iterations(sizes: list[int], iterations: int) -> tuple[int, ...]:
    """`iterations` split over passes of these longest sides: FIRST_SHARES shares to the first,
    and to each later one a share that shrinks as its pixels grow (one share for the second, a
    quarter for a pass of twice its side), so that every later pass takes about the same time.

    An evaluation costs in proportion to the pixels, and the picture is composed by the time the
    larger passes start: on the √2 ladder (128 … 512 px) the previous default's 150 steps at
    each of the last two sizes took three quarters of the time, and halving each pass's steps from
    one size to the next gave pictures that looked the same (docs/quality.md, "Schedule"). At least
    one iteration each; the first takes what rounding leaves.
    """
    if len(sizes) == 1:
        return (iterations,)
    shares = [FIRST_SHARES] + [(sizes[1] / size) ** 2 for size in sizes[1:]]
    later = [max(1, round(iterations * share / sum(shares))) for share in shares[1:]]
    return (max(1, iterations - sum(later)), *later)


def plan(config: StylizeConfig) -> list[Pass]:
    """The passes a validated `config` asks for (config.validate checks scales and counts)."""
    sizes = pass_sizes(config)
    counts = config.scale_iterations or default_iterations(sizes, config.iterations)
    return [Pass(i, len(sizes), size, n) for i, (size, n) in enumerate(zip(sizes, counts, strict=True))]


def initial_image(
    config: StylizeConfig, height: int, width: int, content: np.ndarray | None, styles: list[np.ndarray]
) -> np.ndarray:
    """The first pass's start: noise (the paper), the content, a style, or an image file."""
    if isinstance(config.init, Path):
        return resize(load_image(config.init), height, width)
    init = InitKind(config.init)
    if init is InitKind.NOISE:
        rng = np.random.default_rng(config.seed)
        return rng.random((height, width, 3), dtype=np.float32)
    if init is InitKind.CONTENT:
        if content is None:
            raise NstError("`init` content needs a content image")
        return resize(content, height, width)
    if not styles:
        raise NstError("`init` style needs a style image")
    return resize(styles[0], height, width)


def optimize_whole(
    run: Run,
    current: Pass,
    content: np.ndarray | None,
    styles: list[np.ndarray],
    image: np.ndarray | None,
    adam: AdamState | None,
    steps: int,
    left: int,
    callback: Callback | None,
) -> tuple[LoopResult, PassInfo]:
    """One pass over the whole image: targets at its size, then the optimiser, for `left` steps
    at most."""
    config, engine = run.config, run.engine
    height, width = fit_longest(*run.frame, current.size)
    pass_content = None if content is None else resize(content, height, width)
    targets = engine.targets(
        config.loss, pass_content, styles, run.blend, config.style_scale, (height, width)
    )
    if image is None:
        start = initial_image(config, height, width, pass_content, styles)
    else:
        start = resize(image, height, width)
    if adam is not None:
        adam = adam.resized(height, width)
    return engine.optimize(
        config.loss,
        targets,
        to_nchw(start),
        config.optimizer,
        min(left, current.iterations),
        config.lr,
        callback,
        start_step=steps,
        adam=adam,
        ema_decay=config.ema_decay,
    )


def run_passes(
    run: Run,
    content: np.ndarray | None,
    styles: list[np.ndarray],
    report: Report,
    callback: Callback | None = None,
    on_pass: PassCallback | None = None,
    resume: tuple[np.ndarray, int] | None = None,
    tiling: tiles.Tiling | None = None,
) -> PassesResult:
    """Run every planned pass of `run` on these images; each adds its records and a pass to `report`.

    `content` and `styles` are what the network sees (run.content and run.styles, or their
    colour-preserving versions); `content` is resized from its full size for each pass, never
    from a smaller copy. A pass that is interrupted or meets a non-finite loss ends the run with
    its last good image, at its size. `resume` (image, steps done) skips the passes already
    finished and continues the one the interrupted run was in, from its image. A pass with more
    pixels than a tile runs in tiles (nst_ort/tiles/), as `tiling` says.
    """
    config = run.config
    image: np.ndarray | None = None
    adam: AdamState | None = None  # carried from pass to pass, resized (AdamState.resized)
    steps = 0
    if resume is not None:
        image, steps = resume
    before = 0  # iterations of the passes before `current`
    result = None
    for current in plan(config):
        before, left = before + current.iterations, before + current.iterations - steps
        if left <= 0:
            continue  # finished before the interrupt
        height, width = fit_longest(*run.frame, current.size)
        if on_pass is not None:
            on_pass(current)
        if tiles.tiled(config, height, width):
            start = image if image is not None else initial_image(config, height, width, content, styles)
            result, info = tiles.run_pass(run, current, content, styles, start, adam, steps, callback, tiling)
        else:
            result, info = optimize_whole(run, current, content, styles, image, adam, steps, left, callback)
        adam = result.adam
        # Records time the loop from its own start, after the artifacts and session are ready.
        report.add_records(result.records, time.time() - info.loop_seconds)
        report.add_pass(info, result.evaluations)
        steps += len(result.records)
        image = from_nchw(result.image)
        if result.status.stopped:
            where = f" in pass {current.index + 1}/{current.count} ({width}x{height})"
            return PassesResult(image, result.status, result.message + (where if current.count > 1 else ""))
    if result is None or image is None:
        return PassesResult(image, Status.DONE, "nothing left to do")
    return PassesResult(image, result.status, result.message)
