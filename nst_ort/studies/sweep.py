"""Running a sweep or a batch: every cell not done yet, by a runner, resumably.

A runner computes cells and writes nothing: local.Local (this process, or a pool of processes)
or cluster.Cluster (Ray tasks). This module, in the process that owns the folder, writes each
finished cell's image, report and record (the record last: it is the mark that the cell is
done), so an interrupted sweep resumes where it stopped and a cell is written once however many
times a cluster ran it. A cell that failed (Status.FAILED) is in the summary but leaves no
record, so the next run tries it again.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nst_ort import contract
from nst_ort.config import Status, validate
from nst_ort.files import write_text
from nst_ort.imageio import save_image
from nst_ort.model import ModelInfo
from nst_ort.studies.cell import CallbackFor, CellResult
from nst_ort.studies.grid import Cell, Sweep, cells
from nst_ort.studies.summary import SUMMARY_FILES, write_summary

CELLS_DIR = "cells"


class Runner(Protocol):
    @property
    def model_info(self) -> ModelInfo: ...

    def run(
        self, cells: list[Cell], callback_for: CallbackFor | None = None
    ) -> Iterator[tuple[Cell, CellResult]]:
        """Each cell with its result, in the order they finish."""
        ...


def cell_paths(out_dir: Path, cell: Cell) -> tuple[Path, Path, Path]:
    """The cell's image, report and record."""
    folder = out_dir / CELLS_DIR
    return folder / f"{cell.stem}.png", folder / f"{cell.stem}.report.json", folder / f"{cell.stem}.json"


def place(cell: Cell) -> dict:
    """Where a cell sits in this run's grid: a record found on disk takes it from here."""
    return {
        "row": cell.row,
        "col": cell.col,
        "row_label": cell.row_label,
        "col_label": cell.col_label,
        "content": str(cell.content),
        "style": str(cell.style),
    }


def load_done(out_dir: Path, cell: Cell) -> dict | None:
    """The record of a cell finished by an earlier run, or None."""
    image, _, record = cell_paths(out_dir, cell)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if data.get("key") != cell.key or not image.is_file():
        return None
    return {**data, **place(cell)}  # a batch's cell keeps its files when photos are added


def cell_record(cell: Cell, result: CellResult, image: str | None) -> dict:
    """One row of results.csv and results.json: the cell's settings, outcome and files."""
    loss = cell.config.loss
    report = result.report or {}
    final = report.get("final", {})
    return {
        "key": cell.key,
        **place(cell),
        "content_layers": "+".join(loss.content_layers),
        "style_layers": "+".join(loss.style_layers),
        "content_weight": loss.content_weight,
        "style_weight": loss.style_weight,
        "ratio": loss.ratio if loss.style_weight else None,
        "style_scale": cell.config.style_scale,
        "size": cell.config.size,
        "iterations": cell.config.iterations,
        "status": result.status,
        "message": result.message,
        **{name: final.get(name) for name in contract.TERMS},
        "evaluations": report.get("evaluations"),
        "seconds": report.get("total_seconds"),
        "image": image,
    }


def write_cell(out_dir: Path, cell: Cell, result: CellResult) -> dict:
    """Write a finished cell's image, report and record (last: the done mark); its record.

    An interrupted or failed cell writes nothing.
    """
    image_path, report_path, record_path = cell_paths(out_dir, cell)
    if result.status in (Status.INTERRUPTED, Status.FAILED):
        return cell_record(cell, result, None)
    record = cell_record(cell, result, f"{CELLS_DIR}/{image_path.name}")
    image_path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_path, result.image)
    report = {**result.report, "output": str(image_path)}
    write_text(report_path, json.dumps(report, indent=2) + "\n")
    write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record


@dataclass
class SweepOutcome:
    records: list[dict]  # every finished or failed cell, earlier runs' included, in grid order
    ran: int  # cells computed by this run, failed ones included
    skipped: int  # cells found done
    interrupted: bool
    wrote_summary: bool


CellCallback = Callable[[Cell, dict, bool], None]  # cell, record, skipped


def run_sweep(
    sweep: Sweep,
    out_dir: Path,
    runner: Runner,
    on_cell: CellCallback | None = None,
    callback_for: CallbackFor | None = None,
) -> SweepOutcome:
    """Run every cell not already done in `out_dir` with `runner`, then write the sheet and the
    results. Ctrl-C keeps the cells written so far (outcome.interrupted)."""
    info = runner.model_info
    all_cells = cells(sweep, info.sha256)
    for cell in all_cells:  # bad settings fail before anything runs
        validate(cell.config, info, styles=1)
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
        with contextlib.closing(runner.run(todo, callback_for)) as finished:
            for cell, result in finished:
                if result.status is Status.INTERRUPTED:
                    interrupted = True
                    break
                records[(cell.row, cell.col)] = record = write_cell(out_dir, cell, result)
                ran += 1
                if on_cell is not None:
                    on_cell(cell, record, False)
    except KeyboardInterrupt:
        interrupted = True
    ordered = [records[(c.row, c.col)] for c in all_cells if (c.row, c.col) in records]
    summary_missing = any(not (out_dir / name).is_file() for name in SUMMARY_FILES)
    wrote = False
    if ran or summary_missing:
        write_summary(sweep, all_cells, ordered, out_dir)
        wrote = True
    return SweepOutcome(ordered, ran, len(all_cells) - len(todo), interrupted, wrote)
