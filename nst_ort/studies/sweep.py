"""Running a sweep on this machine: every cell not done yet, in this process or in a pool.

Each finished cell leaves its image, its report and its record (written last: the record is the
mark that the cell is done), so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nst_ort import contract
from nst_ort.api import StylizeResult, stylize
from nst_ort.config import Status, validate
from nst_ort.engine import Engine
from nst_ort.files import write_text
from nst_ort.imageio import save_image
from nst_ort.loop import Callback
from nst_ort.studies.grid import Cell, Sweep, cells
from nst_ort.studies.summary import SUMMARY_FILES, write_summary

CELLS_DIR = "cells"


def cell_paths(out_dir: Path, cell: Cell) -> tuple[Path, Path, Path]:
    """The cell's image, report and record."""
    folder = out_dir / CELLS_DIR
    return folder / f"{cell.stem}.png", folder / f"{cell.stem}.report.json", folder / f"{cell.stem}.json"


def load_done(out_dir: Path, cell: Cell) -> dict | None:
    """The record of a cell finished by an earlier run, or None."""
    image, _, record = cell_paths(out_dir, cell)
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("key") == cell.key and image.is_file() else None


def cell_record(cell: Cell, result: StylizeResult, report: dict) -> dict:
    """One row of results.csv and results.json: the cell's settings, outcome and files."""
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
        "ratio": loss.ratio if loss.style_weight else None,
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

    An interrupted cell leaves nothing behind and comes back with status INTERRUPTED.
    """
    image_path, report_path, record_path = cell_paths(out_dir, cell)
    result = stylize(sweep.content, [sweep.style], cell.config, callback=callback, engine=engine)
    report = result.report.finish(result.status, result.message, image_path)
    record = cell_record(cell, result, report)
    if result.status is Status.INTERRUPTED:
        return record
    image_path.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_path, result.image)
    result.report.write(report_path)
    write_text(record_path, json.dumps(record, indent=2) + "\n")
    return record


_WORKER: dict = {}


def _start_worker(model: Path | None, device: str, threads: int, backend: str) -> None:
    # The parent handles Ctrl-C and terminates the pool; a worker must not stop on its own
    # and leave its cell looking finished.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["engine"] = Engine(model, device, threads, backend=backend)


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
        validate(cell.config, engine.model_info, styles=1)
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
                if record["status"] == Status.INTERRUPTED:
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
            base = sweep.base
            pool = context.Pool(
                min(jobs, len(todo)),
                initializer=_start_worker,
                initargs=(base.model, base.device.value, threads, base.backend),
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
    summary_missing = any(not (out_dir / name).is_file() for name in SUMMARY_FILES)
    wrote = False
    if ran or summary_missing:
        write_summary(sweep, all_cells, ordered, out_dir)
        wrote = True
    return SweepOutcome(ordered, ran, len(all_cells) - len(todo), interrupted, wrote)
