"""One pass in tiles: cut every tile's start from the previous result, optimise the tiles (here,
one after another, or on a Ray cluster), blend them into the pass's image and Adam state.

The tiles of a pass are independent: each starts from the previous pass's result, upsampled and
cut to it, with its cut of Adam's moments, and none sees another's result. So their order does
not matter, a cluster computes the same image as this process, and an interrupted pass keeps its
finished tiles: `on_tile` hears of each (the command line saves it), and `Tiling.resumed` hands
them back, so that a resumed run redoes only the tile it was in. Tiles are blended in their own
order whatever the order they finish in, so the sums, and the image, are the same every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from nst_ort.config import Optimizer, Status, StylizeConfig
from nst_ort.engine import Engine, PassInfo
from nst_ort.imageio import fit_longest, resize, to_nchw
from nst_ort.loop import AdamState, Callback, LoopResult, StepRecord
from nst_ort.tiles.grid import Grid, Tile, pass_grids
from nst_ort.tiles.tile import TileJob, TileResult, compute_tile, style_targets

if TYPE_CHECKING:
    from nst_ort.passes import Pass
    from nst_ort.run import Run


@dataclass(frozen=True)
class TiledStart:
    """What every tile of pass `index` starts from: the previous pass's result and Adam state at
    their own size (or, for a first pass, its start at the pass's size)."""

    index: int
    grid: Grid
    image: np.ndarray  # (height, width, 3)
    adam: AdamState | None


@dataclass(frozen=True)
class TileEvent:
    """What `Tiling.on_tile` hears: a pass's start (`start`), a tile's start (`tile`, here only)
    or a tile finished (`finished`), with the tiles of the pass finished so far."""

    current: Pass
    grid: Grid
    done: int
    start: TiledStart | None = None
    tile: Tile | None = None
    finished: TileResult | None = None


@dataclass
class Resumed:
    """An interrupted tiled pass: its start, and a loader for each finished tile."""

    start: TiledStart
    tiles: Mapping[int, Callable[[], TileResult]]


class Runner(Protocol):
    """Where the tiles of a pass run: yields each tile's result as it finishes."""

    def run_tiles(
        self,
        engine: Engine,
        config: StylizeConfig,
        jobs: Iterator[TileJob],
        count: int,
        style: dict[str, np.ndarray],
        callback: Callback | None,
        started: Callable[[Tile], None],
    ) -> Iterator[TileResult]: ...


class Here:
    """Tiles in this process, one after another, with per-iteration progress."""

    def run_tiles(self, engine, config, jobs, count, style, callback, started) -> Iterator[TileResult]:
        for job in jobs:
            started(job.tile)
            result = compute_tile(engine, job, style, callback)
            yield result
            if result.status.stopped:
                return


@dataclass
class Tiling:
    """How a run's tiled passes run: who hears of the tiles, what an interrupted run left, where."""

    on_tile: Callable[[TileEvent], None] | None = None
    resumed: Resumed | None = None
    runner: Runner = field(default_factory=Here)


@dataclass(frozen=True)
class TiledPassInfo(PassInfo):
    """A tiled pass in the report: PassInfo (for the whole image) and its tiles."""

    grid: dict = field(default_factory=dict)
    tiles: list[dict] = field(default_factory=list)


class Assembly:
    """The pass's image (and Adam's moments) being blended, NCHW float32, and the weights so far."""

    def __init__(self, grid: Grid, moments: bool):
        self.grid = grid
        shape = (1, 3, grid.height, grid.width)
        self.image = np.zeros(shape, np.float32)
        self.weight = np.zeros((grid.height, grid.width), np.float32)
        self.m = np.zeros(shape, np.float32) if moments else None
        self.v = np.zeros(shape, np.float32) if moments else None
        self.t = 0
        self.records: list[tuple[float, list[StepRecord]]] = []  # (share of the image, records)

    def add(self, result: TileResult) -> None:
        tile, weights = result.tile, self.grid.weights(result.tile)
        rows, cols = tile.slices
        self.image[0, :, rows, cols] += weights * result.image.transpose(2, 0, 1)
        self.weight[rows, cols] += weights
        if self.m is not None and result.adam is not None:
            self.m[0, :, rows, cols] += weights * result.adam.m[0]
            self.v[0, :, rows, cols] += weights * result.adam.v[0]
            self.t = result.adam.t
        # Terms are the tile's share by pixels (its loss scale); by weight they add up to the image's.
        share = float(weights.sum()) / (tile.height * tile.width)
        self.records.append((share, result.records))

    def finish(self) -> tuple[np.ndarray, AdamState | None]:
        """The blended image and moments (every pixel is covered, its weights sum to one)."""
        self.image /= self.weight
        if self.m is None:
            return self.image, None
        self.m /= self.weight
        self.v /= self.weight
        return self.image, AdamState(self.m, self.v, self.t)

    def preview(self, start: Callable[[], np.ndarray]) -> np.ndarray:
        """The image so far: blended where tiles are done, the pass's start elsewhere."""
        blended = self.image / np.maximum(self.weight, np.float32(1e-30))
        return np.where(self.weight > 0, blended, to_nchw(start()))


def combined(parts: list[tuple[float, list[StepRecord]]], steps: int) -> list[StepRecord]:
    """The pass's records, numbered on from `steps`: per step, the tiles' terms weighted by their
    blend (an estimate of the whole image's), their evaluations and their seconds added up (a
    tile that stopped early, as L-BFGS may, counts with its last record)."""
    parts = [(share, records) for share, records in parts if records]
    out = []
    for k in range(max((len(records) for _, records in parts), default=0)):
        at = [(share, records[min(k, len(records) - 1)]) for share, records in parts]
        terms: dict[str, float] = {}
        for share, record in at:
            for name, value in record.terms.items():
                terms[name] = terms.get(name, 0.0) + share * value
        evaluations, elapsed = sum(r.evaluations for _, r in at), sum(r.elapsed for _, r in at)
        out.append(StepRecord(steps + k + 1, evaluations, terms, elapsed))
    return out


class _Stopped(Exception):
    """A tile stopped (interrupted, non-finite): the pass stops with it."""


def make_jobs(
    run: Run, current: Pass, content: np.ndarray | None, start: TiledStart, steps: int, tiles: list[Tile]
) -> Iterator[TileJob]:
    """Each tile's job, cut when it is asked for (so that only tiles in flight hold their crops)."""
    config, grid = run.config, start.grid
    pixels = grid.height * grid.width
    for tile in tiles:
        rows, cols = tile.slices
        size = (grid.height, grid.width)
        if start.image.shape[:2] == size:
            image = np.ascontiguousarray(start.image[rows, cols])
        else:
            image = resize(start.image, tile.height, tile.width, tile.box(*size, start.image.shape[:2]))
        adam = None
        if start.adam is not None:
            moments = start.adam.m.shape[-2:]
            if moments == size:
                adam = AdamState(start.adam.m[..., rows, cols].copy(), start.adam.v[..., rows, cols].copy())
                adam.t = start.adam.t
            else:
                adam = start.adam.resized(tile.height, tile.width, tile.box(*size, moments))
        crop = None
        if content is not None:
            crop = resize(content, tile.height, tile.width, tile.box(*size, content.shape[:2]))
        scale = tile.height * tile.width / pixels
        yield TileJob(
            tile, config.loss, config.optimizer, current.iterations, config.lr, config.ema_decay, steps,
            scale, image, adam, crop,
        )  # fmt: skip


def run_pass(
    run: Run,
    current: Pass,
    content: np.ndarray | None,
    styles: list[np.ndarray],
    image: np.ndarray,
    adam: AdamState | None,
    steps: int,
    callback: Callback | None = None,
    tiling: Tiling | None = None,
) -> tuple[LoopResult, TiledPassInfo]:
    """Pass `current` in tiles, from `image` (the previous result, or this pass's start) and
    `adam`; as engine.optimize returns a pass. Each tile runs all of the pass's iterations."""
    config, engine, tiling = run.config, run.engine, tiling or Tiling()
    height, width = fit_longest(*run.frame, current.size)
    grid = pass_grids(config, run.frame)[current.index]
    limit = config.tile
    if grid is None:  # one tile over everything, when called for a pass that fits whole
        grid, limit = Grid(height, width, height, width, (0,), (0,), 0), max(height, width)
    resumed = tiling.resumed
    if resumed is not None and (resumed.start.index, resumed.start.grid) != (current.index, grid):
        resumed = None  # another pass's, or another grid's
    start = resumed.start if resumed is not None else TiledStart(current.index, grid, image, adam)
    if Optimizer(config.optimizer) is not Optimizer.ADAM:
        start = TiledStart(start.index, grid, start.image, None)
    done = dict(resumed.tiles) if resumed is not None else {}

    def emit(**event) -> None:
        if tiling.on_tile is not None:
            tiling.on_tile(TileEvent(current, grid, **event))

    began = time.perf_counter()
    size = (height, width)
    style = style_targets(engine, config.loss, styles, run.blend, config.style_scale, size, limit)
    style_seconds = time.perf_counter() - began
    emit(done=len(done), start=start)
    assembly = Assembly(grid, start.adam is not None)
    finished: dict[int, TileResult] = {}  # results not blended yet (a cluster's come in any order)
    ran: list[tuple[PassInfo, int]] = []  # what the tiles run here cost
    count = len(done)
    todo = [tile for tile in grid.tiles if tile.index not in done]
    jobs = make_jobs(run, current, content, start, steps, todo)
    results = tiling.runner.run_tiles(
        engine, config, jobs, len(todo), style, callback, lambda tile: emit(done=count, tile=tile)
    )
    status, message, reports = Status.DONE, "", []
    try:
        for tile in grid.tiles:
            if tile.index in done:
                result = done.pop(tile.index)()
                result.resumed = True
            else:
                while tile.index not in finished:
                    result = next(results)
                    ran.append((result.info, result.evaluations))
                    if result.status.stopped:
                        status, message = result.status, result.message
                        raise _Stopped
                    finished[result.tile.index] = result
                    count += 1
                    emit(done=count, finished=result)
                result = finished.pop(tile.index)
            assembly.add(result)
            reports.append(result.as_dict())
            del result  # one tile's arrays at a time
    except _Stopped:
        pass
    except KeyboardInterrupt:
        status, message = Status.INTERRUPTED, "interrupted"
    finally:
        results.close()  # a cluster cancels the tiles in flight
    for result in finished.values():  # finished, not blended yet: they belong in the preview
        assembly.add(result)
        reports.append(result.as_dict())
    finished.clear()
    info = TiledPassInfo(
        height,
        width,
        any(i.artifacts_built for i, _ in ran),
        sum(i.artifacts_seconds for i, _ in ran),
        style_seconds + sum(i.targets_seconds for i, _ in ran),
        time.perf_counter() - began - style_seconds,
        grid=grid.as_dict(),
        tiles=sorted(reports, key=lambda r: r["index"]),
    )
    evaluations = sum(n for _, n in ran)
    if status.stopped:

        def whole_start() -> np.ndarray:
            if start.image.shape[:2] == (height, width):
                return start.image
            return resize(start.image, height, width)

        message = f"{message} at tile {count + 1}/{grid.count}"
        return LoopResult(assembly.preview(whole_start), [], status, message, evaluations), info
    image_out, adam_out = assembly.finish()
    records = combined(assembly.records, steps)
    return LoopResult(image_out, records, status, message, evaluations, adam_out), info
