"""One tile's work, wherever it runs, and the style targets every tile of a pass shares.

A tile is optimised as a small image would be, against the style targets of the whole pass and
the content targets of its own crop of the content, with two differences that keep it consistent
with the whole image: the loss is scaled by the tile's share of the image's pixels, so that each
pixel's gradient has the size it would have in an untiled run of the whole image (normalised
terms divide by the pass's size; Adam's moments carry that size from pass to pass), and its
start, moments and content are cut from the whole picture at this pass's scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nst_ort import contract
from nst_ort.config import LossSpec, Optimizer, Status
from nst_ort.engine import Engine, PassInfo
from nst_ort.graphs import sliced
from nst_ort.imageio import fit_longest, from_nchw, resize, to_nchw
from nst_ort.loop import AdamState, Callback, StepRecord
from nst_ort.targets import directions, style_side
from nst_ort.tiles.grid import Tile


@dataclass
class TileJob:
    """Everything one tile needs but the engine and the shared style targets (plain data, so
    that it travels to a Ray worker)."""

    tile: Tile
    spec: LossSpec
    optimizer: Optimizer
    iterations: int
    lr: float
    ema_decay: float
    start_step: int
    scale: float  # the tile's pixels over the image's: the loss's factor
    image: np.ndarray  # (height, width, 3) the start
    adam: AdamState | None  # the start's moments, NCHW
    content: np.ndarray | None  # the content at this pass's scale, cut to the tile


@dataclass
class TileResult:
    tile: Tile
    image: np.ndarray  # (height, width, 3), the tile's result (Adam's moving average, if any)
    adam: AdamState | None
    records: list[StepRecord]
    status: Status
    message: str
    evaluations: int
    info: PassInfo
    resumed: bool = field(default=False)  # read back from an interrupted run, not run again

    def as_dict(self) -> dict:
        """The tile in the report."""
        tile, info = self.tile, self.info
        return {
            "index": tile.index,
            "top": tile.top,
            "left": tile.left,
            "height": tile.height,
            "width": tile.width,
            "status": Status(self.status).value,
            "evaluations": self.evaluations,
            "targets_seconds": round(info.targets_seconds, 3),
            "loop_seconds": round(info.loop_seconds, 3),
            "resumed": self.resumed,
        }


def compute_tile(
    engine: Engine, job: TileJob, style: dict[str, np.ndarray], callback: Callback | None = None
) -> TileResult:
    """Optimise one tile: content targets from its crop, the pass's `style` targets as given."""
    start = time.perf_counter()
    height, width = job.image.shape[:2]
    values = engine.content_targets(job.spec, job.content)
    values.update(style)
    targets = engine.weighted(job.spec, values, height, width, time.perf_counter() - start)
    result, info = engine.optimize(
        job.spec,
        targets,
        to_nchw(job.image),
        job.optimizer,
        job.iterations,
        job.lr,
        callback,
        start_step=job.start_step,
        adam=job.adam,
        ema_decay=job.ema_decay,
        loss_scale=job.scale,
    )
    image = from_nchw(result.image)
    return TileResult(
        job.tile, image, result.adam, result.records, result.status, result.message, result.evaluations, info
    )


def style_targets(
    engine: Engine,
    spec: LossSpec,
    styles: list[np.ndarray],
    blend: list[float],
    style_scale: float,
    output_size: tuple[int, int],
    tile: int,
) -> dict[str, np.ndarray]:
    """The style targets of a pass at `output_size`, each style resized as for an untiled run.

    A style image that, so resized, has more pixels than a `tile` x `tile` tile is cut into tiles
    (each no larger, none overlapping), and its targets are the mean of theirs weighted by their
    pixels: exact for a target that is a mean over positions, as Grams per position are, but
    for the tiles' borders, which see the network's zero padding as the output's tiles do. The
    blend of several styles is the weighted sum of their targets, as targets.py blends them.
    """
    side = style_side(output_size, style_scale)
    sizes = [fit_longest(*style.shape[:2], side) for style in styles]
    if all(h * w <= tile * tile for h, w in sizes):
        return engine.style_targets(spec, styles, blend, style_scale, output_size)
    total = float(sum(blend))
    result: dict[str, np.ndarray] = {}
    for style, weight, (height, width) in zip(styles, blend, sizes, strict=True):
        if height * width <= tile * tile:
            values = engine.style_targets(spec, [style], [1.0], style_scale, output_size)
        else:
            values = tiled_targets(engine, spec, style, height, width, tile, output_size)
        for key, value in values.items():
            share = value * np.float32(weight / total)
            result[key] = result[key] + share if key in result else share
    return result


def tiled_targets(
    engine: Engine,
    spec: LossSpec,
    style: np.ndarray,
    height: int,
    width: int,
    tile: int,
    output_size: tuple[int, int],
) -> dict[str, np.ndarray]:
    """The targets of `style` resized to height x width, from tiles of at most tile x tile px,
    for a pass at `output_size` (whose sliced directions every tile shares)."""
    rows, cols = -(-height // tile), -(-width // tile)
    tops = [round(i * height / rows) for i in range(rows + 1)]
    lefts = [round(j * width / cols) for j in range(cols + 1)]
    sy, sx = style.shape[0] / height, style.shape[1] / width
    given = directions(spec, output_size) if sliced(spec) else None
    parts = []
    for top, bottom in zip(tops, tops[1:], strict=False):
        for left, right in zip(lefts, lefts[1:], strict=False):
            box = (left * sx, top * sy, right * sx, bottom * sy)
            crop = resize(style, bottom - top, right - left, box)
            share = (bottom - top) * (right - left) / (height * width)
            values = engine.style_targets(spec, [crop], [1.0], 1.0, crop.shape[:2], given)
            parts.append((share, values))
    return pooled(spec, parts)


def pooled(spec: LossSpec, parts: list[tuple[float, dict[str, np.ndarray]]]) -> dict[str, np.ndarray]:
    """The targets of a whole style image from those of its tiles, each with its share of the
    pixels. What every tile has alike (the sliced term's directions) stays itself; a target that
    is a mean over positions (a Gram per position) is the shares' weighted mean; a distribution's
    quantiles (the sliced term's) are the quantiles of the tiles' mixture, which the mean of their
    quantiles is not. Whatever else the targets hold is taken as a mean."""
    quantiles = {contract.style_quantile_target(layer) for layer in spec.style_layers}
    first, result = parts[0][1], {}
    for key in first:
        if all(np.array_equal(values[key], first[key]) for _, values in parts):
            result[key] = first[key]
        elif key in quantiles:
            result[key] = mixture_quantiles([(share, values[key]) for share, values in parts])
        else:
            result[key] = sum(values[key] * np.float32(share) for share, values in parts)
    return result


def mixture_quantiles(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Quantiles along the last axis of a mixture of distributions, each given by its quantiles
    (Q values at the levels (j + 1/2) / Q, j < Q) and its weight, at those levels again.

    Each part's Q values stand for Q atoms of equal mass; the mixture's atoms, sorted, with the
    cumulative mass up to each, give its quantile at a level as the first atom whose cumulative
    mass reaches it. One part (or parts alike) gives back its values exactly.
    """
    count = parts[0][1].shape[-1]
    total = sum(share for share, _ in parts)
    values = np.concatenate([np.asarray(v, np.float32) for _, v in parts], axis=-1)
    mass = np.concatenate([np.full(v.shape[-1], share / total / v.shape[-1]) for share, v in parts])
    rows = values.reshape(-1, values.shape[-1])
    order = np.argsort(rows, axis=-1, kind="stable")
    cumulative = np.cumsum(mass[order], axis=-1)
    # One search over all rows: row r's masses (in [0, 1]) and levels shifted by 2r stay in order.
    offset = 2.0 * np.arange(len(rows))[:, None]
    levels = (np.arange(count) + 0.5) / count
    found = np.searchsorted((cumulative + offset).ravel(), (levels + offset).ravel())
    found = np.minimum(
        found.reshape(len(rows), count) - np.arange(len(rows))[:, None] * rows.shape[-1], rows.shape[-1] - 1
    )
    picked = np.take_along_axis(np.take_along_axis(rows, order, axis=-1), found, axis=-1)
    return picked.reshape(*values.shape[:-1], count)
