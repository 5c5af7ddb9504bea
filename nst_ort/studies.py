"""Studies of the method: reconstructions from single layers, and sweeps over one or two axes.

A reconstruction starts from noise and minimises one loss alone: the content loss at one layer
shows what that layer keeps of the image, the style loss on some layers gives a texture with
the image's style at their scale (the paper's Figure 1). A sweep stylises one content image with
one style over a grid of settings (the paper's Figure 3 is style layers x alpha/beta) and leaves
each cell's image and report, `results.csv`, `results.json` and a labelled `sheet.png` in a
folder; re-running it skips the cells already there.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

import numpy as np

from nst_ort import contract, layerspec
from nst_ort.api import StylizeResult, as_image, stylize
from nst_ort.config import InitKind, LossSpec, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import FAILURE, NstError
from nst_ort.files import atomic_path, write_text
from nst_ort.imageio import fit_longest, load_image, save_image
from nst_ort.loop import Callback
from nst_ort.model import sha256_file
from nst_ort.report import Report, plain
from nst_ort.scales import PassCallback, plan, run_passes

# --- reconstructions ---------------------------------------------------------------------------


class ReconstructKind(str, Enum):
    CONTENT = "content"
    STYLE = "style"


def reconstruction_loss(kind: ReconstructKind, layers: list[str] | tuple[str, ...]) -> LossSpec:
    """One loss alone: content at one layer (weight 1), or style on `layers` (equal weights 1/N,
    as the paper weights its style layers). α and β keep their defaults, so loss values read
    like a stylisation's terms."""
    if ReconstructKind(kind) is ReconstructKind.CONTENT:
        return LossSpec(content_layers={layer: 1.0 for layer in layers}, style_layers={})
    return LossSpec(content_layers={}, style_layers={layer: 1.0 / len(layers) for layer in layers})


def reconstruct(
    image: Path | str | np.ndarray,
    kind: ReconstructKind,
    config: StylizeConfig,
    engine: Engine | None = None,
    callback: Callback | None = None,
    on_pass: PassCallback | None = None,
) -> StylizeResult:
    """Minimise `config.loss` (from `reconstruction_loss`) alone, from `config.init` (noise).

    The output has the image's aspect ratio and `config.size` as its longest side.
    """
    if config.init is InitKind.CONTENT:
        # Starting from the image itself would make a content reconstruction trivial.
        config = replace(config, init=InitKind.NOISE)
    plan(config)
    engine = engine or Engine(config.model, config.device.value, config.threads, backend=config.backend)
    picture = as_image(image)
    frame = picture.shape[:2]
    report = Report(
        config,
        engine.model_info,
        engine.device,
        {
            "reconstruct": ReconstructKind(kind).value,
            "image": image if not isinstance(image, np.ndarray) else "array",
            "size": list(fit_longest(*frame, config.size)),
        },
    )
    if ReconstructKind(kind) is ReconstructKind.CONTENT:
        content, styles = picture, []
    else:
        content, styles = None, [picture]
    result = run_passes(engine, config, content, styles, [1.0], frame, report, callback, on_pass)
    return StylizeResult(result.image, result.status, result.message, report)


# --- sweep axes --------------------------------------------------------------------------------


class AxisKind(str, Enum):
    CONTENT_LAYER = "content_layer"
    STYLE_LAYERS = "style_layers"
    STYLE_SIZE = "style_size"
    STYLE_SCALE = "style_scale"
    RATIO = "ratio"


# The order in which axes become rows, then columns: layers down the side and α/β across, as in
# the paper's Figure 3.
AXIS_ORDER = list(AxisKind)

AXIS_TITLES = {
    AxisKind.CONTENT_LAYER: "content layer",
    AxisKind.STYLE_LAYERS: "style layers",
    AxisKind.STYLE_SIZE: "style size (px)",
    AxisKind.STYLE_SCALE: "style scale",
    AxisKind.RATIO: "alpha/beta",
}


@dataclass(frozen=True)
class Axis:
    kind: AxisKind
    values: tuple  # a layer name, a tuple of layer names, or a number per position
    labels: tuple[str, ...]

    @property
    def title(self) -> str:
        return AXIS_TITLES[self.kind]


def parse_content_layers(text: str, available: tuple[str, ...]) -> Axis:
    """`relu1_2,relu3_2` or `relu1_2..relu5_2`: one content layer per cell."""
    layers = layerspec.layer_list(text, available, "content")
    return Axis(AxisKind.CONTENT_LAYER, tuple(layers), tuple(layers))


def parse_style_layers(text: str, available: tuple[str, ...]) -> Axis:
    """Style layer sets, one per cell (layerspec.layer_sets: `+` sets, ranges, `cumulative:`)."""
    sets, cumulative = layerspec.layer_sets(text, available, "style")
    if cumulative:
        labels = [s[0] if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in sets]
    else:
        labels = ["+".join(s) for s in sets]
    return Axis(AxisKind.STYLE_LAYERS, tuple(sets), tuple(labels))


def parse_numbers(kind: AxisKind, text: str) -> Axis:
    option = "--" + kind.value.replace("_", "-")
    values = layerspec.numbers(text, option)
    if not values:
        raise NstError(f"{option}: no values given")
    if any(not v > 0 for v in values):
        raise NstError(f"{option}: values must be positive")
    if kind is AxisKind.STYLE_SIZE:
        if any(v != int(v) or v < 16 for v in values):
            raise NstError(f"{option}: sizes must be whole numbers of pixels, at least 16")
        return Axis(kind, tuple(int(v) for v in values), tuple(f"{int(v)} px" for v in values))
    if kind is AxisKind.STYLE_SCALE:
        return Axis(kind, tuple(values), tuple(f"x{v:g}" for v in values))
    return Axis(kind, tuple(values), tuple(_scientific(v) for v in values))


def _scientific(value: float) -> str:
    """1e-4, 2.5e-3: the way the paper writes α/β."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


# --- sweep cells -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    row_label: str
    col_label: str
    config: StylizeConfig
    key: str  # hash of everything that decides the result

    @property
    def stem(self) -> str:
        return f"r{self.row}c{self.col}-{self.key}"


@dataclass(frozen=True)
class Sweep:
    content: Path
    style: Path
    base: StylizeConfig  # the settings every cell shares; axes override some
    rows: Axis | None  # None: one row (a one-axis sweep)
    cols: Axis


def make_sweep(content: Path, style: Path, base: StylizeConfig, axes: list[Axis]) -> Sweep:
    """One or two axes; each axis kind at most once; rows then columns in AXIS_ORDER."""
    kinds = [a.kind for a in axes]
    if {AxisKind.STYLE_SIZE, AxisKind.STYLE_SCALE} <= set(kinds):
        raise NstError("--style-size and --style-scale are the same axis; give one")
    if len(set(kinds)) != len(kinds):
        raise NstError("each axis can be given once")
    if not axes:
        raise NstError(
            "a sweep needs an axis: give --content-layer, --style-layers, --ratio, --style-size "
            "or --style-scale two or more values"
        )
    if len(axes) > 2:
        titles = ", ".join(a.title for a in axes)
        raise NstError(f"a sweep has one or two axes, not {len(axes)} ({titles}); fix the others")
    axes = sorted(axes, key=lambda a: AXIS_ORDER.index(a.kind))
    return Sweep(content, style, base, axes[0] if len(axes) == 2 else None, axes[-1])


def apply_axis(config: StylizeConfig, kind: AxisKind, value) -> StylizeConfig:
    """`config` with one axis value set."""
    loss = config.loss
    if kind is AxisKind.CONTENT_LAYER:
        return dataclasses.replace(config, loss=dataclasses.replace(loss, content_layers={value: 1.0}))
    if kind is AxisKind.STYLE_LAYERS:
        # Equal weights summing to one, as the paper's w_l = 1/5 for its five layers.
        layers = {layer: 1.0 / len(value) for layer in value}
        return dataclasses.replace(config, loss=dataclasses.replace(loss, style_layers=layers))
    if kind is AxisKind.RATIO:
        # α stays; β follows the ratio, so the content term keeps its scale across the row.
        weight = loss.content_weight / value
        return dataclasses.replace(config, loss=dataclasses.replace(loss, style_weight=weight))
    if kind is AxisKind.STYLE_SIZE:
        # The style image's longest side in pixels when the output is at --size.
        return dataclasses.replace(config, style_scale=value / config.size)
    return dataclasses.replace(config, style_scale=float(value))


def _key(config: StylizeConfig, model_sha256: str, content_sha256: str, style_sha256: str) -> str:
    settings = plain(config)
    for machine_only in ("model", "device", "threads"):  # where and how fast, not what
        settings.pop(machine_only)
    blob = json.dumps(
        {"config": settings, "model": model_sha256, "content": content_sha256, "style": style_sha256},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def cells(sweep: Sweep, model_sha256: str) -> list[Cell]:
    content_sha, style_sha = sha256_file(sweep.content), sha256_file(sweep.style)
    rows = sweep.rows.values if sweep.rows else (None,)
    result = []
    for r, row_value in enumerate(rows):
        for c, col_value in enumerate(sweep.cols.values):
            config = sweep.base
            if sweep.rows is not None:
                config = apply_axis(config, sweep.rows.kind, row_value)
            config = apply_axis(config, sweep.cols.kind, col_value)
            row_label = sweep.rows.labels[r] if sweep.rows else ""
            key = _key(config, model_sha256, content_sha, style_sha)
            result.append(Cell(r, c, row_label, sweep.cols.labels[c], config, key))
    return result


# --- running -----------------------------------------------------------------------------------

CELLS_DIR = "cells"
CSV_FIELDS = (
    "row",
    "col",
    "row_label",
    "col_label",
    "content_layers",
    "style_layers",
    "content_weight",
    "style_weight",
    "ratio",
    "style_scale",
    "size",
    "iterations",
    "status",
    contract.LOSS,
    contract.LOSS_CONTENT,
    contract.LOSS_STYLE,
    contract.LOSS_TV,
    "evaluations",
    "seconds",
    "image",
)


def _paths(out_dir: Path, cell: Cell) -> tuple[Path, Path, Path]:
    folder = out_dir / CELLS_DIR
    return folder / f"{cell.stem}.png", folder / f"{cell.stem}.report.json", folder / f"{cell.stem}.json"


def load_done(out_dir: Path, cell: Cell) -> dict | None:
    """The record of a cell finished by an earlier run, or None."""
    image, _, record = _paths(out_dir, cell)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == cell.key and image.is_file() else None


def cell_record(cell: Cell, result: StylizeResult, report: dict) -> dict:
    loss = cell.config.loss
    final = report.get("final", {})
    return {
        "key": cell.key,
        "row": cell.row,
        "col": cell.col,
        "row_label": cell.row_label,
        "col_label": cell.col_label,
        "content_layers": "+".join(loss.content_layers),
        "style_layers": "+".join(loss.style_layers),
        "content_weight": loss.content_weight,
        "style_weight": loss.style_weight,
        "ratio": loss.content_weight / loss.style_weight if loss.style_weight else None,
        "style_scale": cell.config.style_scale,
        "size": cell.config.size,
        "iterations": cell.config.iterations,
        "status": result.status,
        **{name: final.get(name) for name in contract.TERMS},
        "evaluations": report["evaluations"],
        "seconds": report["total_seconds"],
        "image": f"{CELLS_DIR}/{cell.stem}.png",
    }


def run_cell(
    engine: Engine, sweep: Sweep, cell: Cell, out_dir: Path, callback: Callback | None = None
) -> dict:
    """Stylise one cell and leave its image, report and record (written last: the done mark).

    An interrupted cell leaves nothing behind and comes back with status 'interrupted'.
    """
    image_path, report_path, record_path = _paths(out_dir, cell)
    result = stylize(sweep.content, [sweep.style], cell.config, callback=callback, engine=engine)
    report = result.report.finish(result.status, result.message, image_path)
    record = cell_record(cell, result, report)
    if result.status == "interrupted":
        return record
    image_path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_path, result.image)
    result.report.write(report_path)
    write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record


_WORKER: dict = {}


def _start_worker(model: Path | None, device: str, threads: int) -> None:
    # The parent handles Ctrl-C and terminates the pool; a worker must not stop on its own
    # and leave its cell looking finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["engine"] = Engine(model, device, threads)


def _worker_cell(task: tuple[Sweep, Cell, Path]) -> dict:
    sweep, cell, out_dir = task
    return run_cell(_WORKER["engine"], sweep, cell, out_dir)


@dataclass
class SweepOutcome:
    records: list[dict]  # every finished cell, earlier runs' included, in grid order
    ran: int  # cells computed by this run
    skipped: int  # cells found done
    interrupted: bool
    wrote_summary: bool


CellCallback = Callable[[Cell, dict, bool], None]  # cell, record, skipped


def run_sweep(
    sweep: Sweep,
    out_dir: Path,
    engine: Engine,
    jobs: int = 1,
    on_cell: CellCallback | None = None,
    callback_for: Callable[[Cell], Callback | None] | None = None,
) -> SweepOutcome:
    """Run every cell not already done in `out_dir`, then write the sheet and the results.

    With `jobs` > 1 the cells run in that many spawned worker processes, each with its own
    engine and an equal share of the CPU threads (unless the config fixes `threads`).
    """
    all_cells = cells(sweep, engine.model_info.sha256)
    for cell in all_cells:  # bad settings fail before anything runs
        plan(cell.config)
        engine.check_layers(cell.config.loss)
    records: dict[tuple[int, int], dict] = {}
    todo: list[Cell] = []
    for cell in all_cells:
        done = load_done(out_dir, cell)
        if done is None:
            todo.append(cell)
        else:
            records[(cell.row, cell.col)] = done
            if on_cell is not None:
                on_cell(cell, done, True)
    (out_dir / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    interrupted = False
    ran = 0
    try:
        if jobs <= 1 or len(todo) <= 1:
            for cell in todo:
                callback = callback_for(cell) if callback_for is not None else None
                record = run_cell(engine, sweep, cell, out_dir, callback)
                if record["status"] == "interrupted":
                    interrupted = True
                    break
                records[(cell.row, cell.col)] = record
                ran += 1
                if on_cell is not None:
                    on_cell(cell, record, False)
        else:
            threads = sweep.base.threads or max(1, (os.cpu_count() or 1) // jobs)
            context = multiprocessing.get_context("spawn")
            by_key = {cell.key: cell for cell in todo}
            pool = context.Pool(
                min(jobs, len(todo)),
                initializer=_start_worker,
                initargs=(sweep.base.model, sweep.base.device.value, threads),
            )
            try:
                for record in pool.imap_unordered(_worker_cell, [(sweep, c, out_dir) for c in todo]):
                    cell = by_key[record["key"]]
                    records[(cell.row, cell.col)] = record
                    ran += 1
                    if on_cell is not None:
                        on_cell(cell, record, False)
                pool.close()
            finally:
                pool.terminate()
                pool.join()
    except KeyboardInterrupt:
        interrupted = True
    ordered = [records[(c.row, c.col)] for c in all_cells if (c.row, c.col) in records]
    summary_missing = any(not (out_dir / n).is_file() for n in ("sheet.png", "results.csv", "results.json"))
    wrote = False
    if ran or summary_missing:
        write_summary(sweep, all_cells, ordered, out_dir)
        wrote = True
    return SweepOutcome(ordered, ran, len(all_cells) - len(todo), interrupted, wrote)


# --- summary -----------------------------------------------------------------------------------


def write_summary(sweep: Sweep, all_cells: list[Cell], records: list[dict], out_dir: Path) -> None:
    """sheet.png, results.csv and results.json from the finished cells."""
    from nst_ort.sheet import contact_sheet

    done = {(r["row"], r["col"]): r for r in records}
    rows = len(sweep.rows.values) if sweep.rows else 1
    grid: list[list[np.ndarray | None]] = [[None] * len(sweep.cols.values) for _ in range(rows)]
    for cell in all_cells:
        record = done.get((cell.row, cell.col))
        if record is not None:
            grid[cell.row][cell.col] = load_image(out_dir / record["image"])
    sheet = contact_sheet(
        grid,
        sweep.cols.title,
        list(sweep.cols.labels),
        sweep.rows.title if sweep.rows else "",
        list(sweep.rows.labels) if sweep.rows else None,
    )
    with atomic_path(out_dir / "sheet.png") as tmp:
        try:
            sheet.save(tmp, format="PNG")
        except OSError as exc:
            raise NstError(f"{out_dir / 'sheet.png'}: cannot write ({exc})", FAILURE) from None

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    write_text(out_dir / "results.csv", text.getvalue())
    fixed = plain(sweep.base)
    for machine_only in ("device", "threads"):
        fixed.pop(machine_only)
    summary = {
        "content": str(sweep.content),
        "style": str(sweep.style),
        "rows": _axis_dict(sweep.rows),
        "cols": _axis_dict(sweep.cols),
        "settings": fixed,
        "cells": records,
    }
    write_text(out_dir / "results.json", json.dumps(summary, indent=2) + "\n")


def _axis_dict(axis: Axis | None) -> dict | None:
    if axis is None:
        return None
    return {"axis": axis.kind.value, "title": axis.title, "labels": list(axis.labels)}
