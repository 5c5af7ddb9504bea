"""Running a sweep: an interrupted one keeps its finished cells and resumes."""

from __future__ import annotations

import json

from nst_ort import StylizeConfig
from nst_ort.engine import Engine
from nst_ort.studies.grid import AxisKind, make_sweep, parse_numbers
from nst_ort.studies.local import Local
from nst_ort.studies.sweep import run_sweep


def test_an_interrupted_sweep_keeps_finished_cells_and_resumes(tiny_model, make_image, tmp_path):
    content, style = make_image("c.png", 32, 40, seed=0), make_image("s.png", 32, 32, seed=1)
    engine = Engine(tiny_model, "cpu")
    ratio = parse_numbers(AxisKind.RATIO, "1e-4,1e-2")
    sweep = make_sweep(content, style, StylizeConfig(model=tiny_model, size=32, iterations=3), [ratio])
    out = tmp_path / "sweep"

    def interrupt_the_second_cell(cell):
        def callback(record, image):
            if cell.col == 1:
                raise KeyboardInterrupt  # what Ctrl-C raises inside the loop

        return callback

    first = run_sweep(sweep, out, Local(engine), callback_for=interrupt_the_second_cell)
    assert first.interrupted and (first.ran, first.skipped) == (1, 0)
    assert sorted(p.name.split("-")[0] for p in (out / "cells").iterdir()) == ["r0c0"] * 3
    assert len(json.loads((out / "results.json").read_text())["cells"]) == 1

    second = run_sweep(sweep, out, Local(engine))
    assert not second.interrupted and (second.ran, second.skipped) == (1, 1)
    assert [r["col_label"] for r in second.records] == ["1e-4", "1e-2"]
