"""Running cells on this machine: one after another in this process, or in a pool of processes.

A runner yields each cell with its result as it finishes and writes nothing: sweep.run_sweep
writes the files. cluster.py runs the same cells on a Ray cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from nst_ort.config import StylizeConfig
from nst_ort.engine import Engine
from nst_ort.model import ModelInfo
from nst_ort.studies.cell import CallbackFor, CellResult, compute_cell
from nst_ort.studies.grid import Cell


class Local:
    """Cells in this process with `engine`, or with `jobs` > 1 in that many spawned processes,
    each with its own engine and an equal share of the CPU threads (unless the config fixes
    `threads`)."""

    def __init__(self, engine: Engine, jobs: int = 1):
        self.engine = engine
        self.jobs = jobs

    def __enter__(self) -> Local:  # as a cluster is entered: nothing to connect to here
        return self

    def __exit__(self, *exc) -> None:
        pass

    @property
    def model_info(self) -> ModelInfo:
        return self.engine.model_info

    def check(self, config: StylizeConfig) -> None:
        """Whatever the config asks, this machine can try: validate() has the last word."""

    def describe(self) -> str:
        processes = f", {self.jobs} processes" if self.jobs > 1 else ""
        return f"device: {self.engine.device}{processes}"

    def run(
        self, cells: list[Cell], callback_for: CallbackFor | None = None
    ) -> Iterator[tuple[Cell, CellResult]]:
        """Each cell and its result, as they finish; `callback_for` is used in this process only."""
        if self.jobs <= 1 or len(cells) <= 1:
            for cell in cells:
                callback = callback_for(cell) if callback_for is not None else None
                yield cell, compute_cell(self.engine, cell, callback)
            return
        base = cells[0].config  # device, threads and backend are the same in every cell
        threads = base.threads or max(1, (os.cpu_count() or 1) // self.jobs)
        pool = multiprocessing.get_context("spawn").Pool(
            min(self.jobs, len(cells)),
            initializer=_start_worker,
            initargs=(base.model, base.device.value, threads, base.backend),
        )
        try:
            for index, result in pool.imap_unordered(_worker_cell, enumerate(cells)):
                yield cells[index], result
            pool.close()
        finally:
            pool.terminate()
            pool.join()


_WORKER: dict = {}


def _start_worker(model: Path | None, device: str, threads: int, backend: str) -> None:
    # The parent handles Ctrl-C and terminates the pool; a worker must not stop on its own
    # and hand back an interrupted cell.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["engine"] = Engine(model, device, threads, backend=backend)


def _worker_cell(task: tuple[int, Cell]) -> tuple[int, CellResult]:
    index, cell = task
    return index, compute_cell(_WORKER["engine"], cell)
