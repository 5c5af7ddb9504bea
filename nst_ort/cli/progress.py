"""What the terminal shows while a run goes, and how Ctrl-C and SIGTERM stop it.

Progress goes to stderr and results to stdout, one line each however narrow the terminal, so
that `nst-ort … > log` keeps only the results.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from nst_ort import contract, errors
from nst_ort.cli.options import as_options
from nst_ort.config import Status
from nst_ort.imageio import from_nchw, save_image
from nst_ort.loop import StepRecord
from nst_ort.passes import Pass
from nst_ort.studies.grid import Cell
from nst_ort.tiles import TileEvent

# soft_wrap: messages stay one line each, however narrow the terminal (or none at all).
err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def interrupt_on_sigterm() -> None:
    """SIGTERM stops a run as Ctrl-C does (the image and report are kept); a second one exits."""

    def handler(signum, frame):
        # A second signal while the first is being handled exits at once.
        signal.signal(signal.SIGINT, lambda *_: os._exit(errors.INTERRUPTED))
        signal.signal(signal.SIGTERM, lambda *_: os._exit(errors.INTERRUPTED))
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class ProgressView:
    """A live bar (iteration, loss, it/s, ETA) and periodic saves: the loop's callback.

    A coarse-to-fine run gets one bar per scale (`start_pass`); steps count on across passes. A
    tiled pass's bar counts the steps of all its tiles and names the tile (`on_tile`); its
    tiles' images are parts, so --save-every saves none of them.
    """

    def __init__(
        self, total: int, quiet: bool, save_every: int, output: Path, description: str = "stylizing"
    ):
        self.total = total
        self.save_every = save_every
        self.output = output
        self.offset = 0  # steps done by earlier passes
        self.last_step = 0
        self.tile_base: int | None = None  # in a tiled pass: the steps of its tiles done before this one
        self.pass_label = description
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} it/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=total, loss="-", rate="-")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def start_pass(self, current: Pass) -> None:
        """Called before each pass; single-pass runs keep their one bar."""
        self.offset = self.last_step
        self.tile_base = None
        if current.count == 1:
            return
        description = f"scale {current.index + 1}/{current.count}: {current.size} px"
        self.pass_label = description
        if current.index == 0:
            self.progress.update(self.task, description=description, total=current.iterations)
        else:
            self.task = self.progress.add_task(description, total=current.iterations, loss="-", rate="-")

    def on_tile(self, event: TileEvent) -> None:
        """Tiling.on_tile: the bar of a tiled pass counts its tiles' steps and names the tile."""
        iterations, count = event.current.iterations, event.grid.count
        self.tile_base = event.done * iterations
        tile = "" if event.tile is None else f", tile {event.done + 1}/{count}"
        self.progress.update(
            self.task,
            description=f"{self.pass_label} in {count} tiles{tile}",
            total=iterations * count,
            completed=self.tile_base,
        )

    def __call__(self, record: StepRecord, image: np.ndarray | None) -> None:
        self.last_step = record.step
        steps = record.step - self.offset
        done = steps if self.tile_base is None else self.tile_base + steps
        rate = steps / record.elapsed if record.elapsed > 0 else 0.0
        self.progress.update(
            self.task,
            completed=done,
            loss=f"{record.terms.get(contract.LOSS, float('nan')):.4g}",
            rate=f"{rate:.2f}",
        )
        if self.save_every and self.tile_base is None and record.step % self.save_every == 0:
            path = self.output.with_name(f"{self.output.stem}_{record.step:05d}{self.output.suffix}")
            save_image(path, from_nchw(image))


class SweepView:
    """A sweep's progress: a bar over the cells, one over the current cell's iterations, and a
    line per finished cell. Its methods are run_sweep's `on_cell` and `callback_for`."""

    def __init__(self, cells: int, quiet: bool):
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            disable=quiet,
        )
        self.overall = self.progress.add_task("cells", total=cells)
        self.current = None  # the running cell's task
        self.skipped: list[str] = []

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _drop_current(self) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None

    def on_cell(self, cell: Cell, record: dict, skipped: bool) -> None:
        self.progress.advance(self.overall)
        if skipped:
            self.skipped.append(cell.label)
            return
        self._drop_current()
        if self.quiet:
            return
        if record["status"] in (Status.FAILED, Status.NONFINITE):  # why, rather than a loss
            line = f"{cell.label}: {record['status']}: {as_options(record['message'])}"
        else:
            line = (
                f"{cell.label}: {record['status']} in {record['seconds']:.1f} s, "
                f"{record['evaluations']} evaluations, loss {record[contract.LOSS]:.4g}"
            )
        self.progress.console.print(line, highlight=False, markup=False)

    def callback_for(self, cell: Cell):
        self._drop_current()
        self.current = self.progress.add_task(cell.label, total=cell.config.iterations)
        task = self.current

        def callback(record: StepRecord, image: np.ndarray) -> None:
            self.progress.update(task, completed=record.step)

        return callback
