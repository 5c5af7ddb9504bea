"""A sweep's summary: sheet.png (the labelled grid), results.csv and results.json.

Written from the records of the finished cells, whoever ran them; a cell not done yet is a grey
square on the sheet and no row in the results, a failed cell a grey square and a row that says
why.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from nst_ort import contract
from nst_ort.errors import FAILURE, NstError
from nst_ort.files import atomic_path, write_text
from nst_ort.imageio import load_image
from nst_ort.report import plain
from nst_ort.studies.grid import Axis, AxisKind, Cell, Sweep
from nst_ort.studies.sheet import contact_sheet

SUMMARY_FILES = ("sheet.png", "results.csv", "results.json")
CSV_FIELDS = (
    "row",
    "col",
    "row_label",
    "col_label",
    "content",
    "style",
    "content_layers",
    "style_layers",
    "content_weight",
    "style_weight",
    "ratio",
    "style_scale",
    "size",
    "iterations",
    "status",
    "message",
    *contract.TERMS,
    "evaluations",
    "seconds",
    "image",
)


def write_summary(sweep: Sweep, all_cells: list[Cell], records: list[dict], out_dir: Path) -> None:
    """sheet.png, results.csv and results.json from the finished cells."""
    done = {(r["row"], r["col"]): r for r in records}
    rows, cols = sweep.shape
    grid: list[list[np.ndarray | None]] = [[None] * cols for _ in range(rows)]
    for cell in all_cells:
        record = done.get((cell.row, cell.col))
        if record is not None and record["image"] is not None:
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
        "content": None if sweep.content is None else str(sweep.content),  # None: a batch's axis
        "style": None if sweep.style is None else str(sweep.style),
        "rows": axis_dict(sweep.rows),
        "cols": axis_dict(sweep.cols),
        "settings": fixed,
        "cells": records,
    }
    write_text(out_dir / "results.json", json.dumps(summary, indent=2) + "\n")


def axis_dict(axis: Axis | None) -> dict | None:
    if axis is None:
        return None
    found = {"axis": axis.kind.value, "title": axis.title, "labels": list(axis.labels)}
    if axis.kind in (AxisKind.CONTENT, AxisKind.STYLE):
        found["paths"] = [str(path) for path in axis.values]
    return found
