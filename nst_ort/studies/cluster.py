"""Running cells on a Ray cluster: each cell one Ray task, no filesystem shared with the driver.

What travels: the model file's bytes and each image file's bytes go into Ray's object store once
(`ray.put`) and every task that needs them refers to them; a task hands back its image and its
report, and only the driver (the process that owns the sweep's folder, sweep.run_sweep) writes
files. A task reserves `threads` CPUs and ONNX Runtime runs that many threads (0: the cluster's
CPUs shared among the cells, at most one node's). A worker process keeps the engine it built, so
a worker that runs many cells loads the model once.

Faults: a task whose worker process or node dies is run again by Ray (`retries` times); the
driver takes one result per cell. A cell with bad input fails alone (Status.FAILED), as here.

Ray is imported only when a cluster is used: `pip install 'nst-ort[ray]'`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nst_ort import paths
from nst_ort.config import Device, Status, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import FAILURE, NstError
from nst_ort.model import ModelInfo, load_model
from nst_ort.studies.cell import CallbackFor, CellResult, compute_cell
from nst_ort.studies.grid import Cell
from nst_ort.tiles import Tile, TileJob, TileResult, compute_tile

INSTALL_HINT = "pip install 'nst-ort[ray]'"
RETRIES = 3  # Ray's max_retries: how often a cell whose worker died runs again
CONNECT_SECONDS = 5.0  # an address that does not answer in this time is refused
WAIT_SECONDS = 1.0  # the driver wakes this often, so that Ctrl-C is heard
IN_FLIGHT = 2  # tasks submitted per task slot: enough to keep every slot busy, few images held


def require_ray():
    """The ray module, or one line that says how to install it."""
    try:
        import ray
    except ImportError:
        raise NstError(f"Ray is not installed; {INSTALL_HINT}") from None
    return ray


def check_address(address: str) -> None:
    """Refuse, in seconds, an address where nothing answers (ray.init would wait for minutes)."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "auto")  # what ray.init reads for `auto`
        if address == "auto":
            return  # a cluster started on this machine: ray.init finds it or says so at once
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        raise NstError(f"Ray address {address}: not auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise NstError(f"no Ray cluster answers at {address} ({reason})") from None


def connect(address: str | None) -> bool:
    """Connect this process to Ray: to the cluster at `address`, or with None to a new one on
    this machine. A process already connected keeps its connection. True when this call
    connected (and the caller must disconnect)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    if address is not None:
        check_address(address)
    options = {"include_dashboard": False} if address is None else {}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **options)
    except Exception as exc:  # Ray's errors (no cluster, versions, authentication) are many
        text = str(exc).strip().splitlines() or [type(exc).__name__]
        where = f"Ray at {address}" if address is not None else "a new Ray on this machine"
        raise NstError(f"cannot connect to {where}: {text[0]}") from None
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)  # ray.init replaces the caller's handler
    return True


@dataclass(frozen=True)
class Job:
    """What every task of a run shares, besides the model's bytes."""

    model_name: str  # the model's path on the driver, as reports name it
    model_sha256: str
    device: str
    threads: int
    backend: str


# A worker process's engine, kept for its next cells, and how many cells it has started.
_ENGINES: dict[tuple, list] = {}


def worker_engine(job: Job, model: list) -> tuple[Engine, int]:
    """This worker's engine for `job`, built from the model's bytes the first time, and the
    number of cells it has been used for, this one included (1: the model was loaded for it)."""
    key = (job.model_sha256, job.device, job.threads, job.backend)
    if key not in _ENGINES:
        import ray

        _ENGINES.clear()  # one model in memory per worker
        data = ray.get(model[0])
        # The loader reads a file: a private copy under the model's own name, for messages.
        with tempfile.TemporaryDirectory(prefix="nst-ort-model-") as folder:
            path = Path(folder) / Path(job.model_name).name
            path.write_bytes(data)
            _ENGINES[key] = [Engine(path, job.device, job.threads, backend=job.backend), 0]
    _ENGINES[key][1] += 1
    engine, cells = _ENGINES[key]
    return engine, cells


def stylize_cell(cell: Cell, job: Job, model: list, content: bytes, style: bytes) -> CellResult:
    """The Ray task: one cell on a worker. `model` holds the model's object reference, fetched
    only by a worker that has no engine yet; the images' bytes come resolved."""
    import ray

    engine, cells = worker_engine(job, model)
    result = compute_cell(engine, cell, data=(content, style))
    if result.report is not None:
        result.report["model"]["path"] = job.model_name
        result.report["worker"] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "threads": job.threads,
            "cells": cells,  # cells this worker process has run with its engine, this one included
        }
    return result


def stylize_tile(job: Job, model: list, tile: TileJob, style: dict) -> TileResult:
    """The Ray task of one tile of a pass: `style` holds the pass's style targets, resolved."""
    engine, _ = worker_engine(job, model)
    return compute_tile(engine, tile, style)


def task_error(exc, label: str) -> NstError:
    """The one line for a task that raised on a worker: a worker's own NstError as it is (the
    worker's installation: every task would fail so), anything else under the task's label."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, NstError):
        return NstError(f"on the Ray cluster: {cause}", cause.exit_code)
    text = str(cause).strip().splitlines()
    detail = f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
    return NstError(f"{label}: {detail}", FAILURE)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NstError(f"{path}: cannot read ({exc.strerror})") from None


class Cluster:
    """Cells as Ray tasks on the cluster at `address` (`auto`, HOST:PORT or ray://HOST:PORT;
    None: a new Ray on this machine). Use it as a context manager: it connects on entry and
    disconnects on exit (a process already connected to Ray keeps its connection)."""

    def __init__(self, model: Path | None, address: str | None = "auto", retries: int = RETRIES):
        self.model_path = Path(model) if model is not None else paths.default_model_path()
        _, self.info = load_model(self.model_path)  # checked and hashed here, built on the workers
        self.address = address
        self.retries = retries
        self.connected = False

    def __enter__(self) -> Cluster:
        self.connected = connect(self.address)
        return self

    def __exit__(self, *exc) -> None:
        if self.connected:
            require_ray().shutdown()
            self.connected = False

    @property
    def model_info(self) -> ModelInfo:
        return self.info

    def node_cpus(self) -> list[float]:
        """The CPUs of each live node."""
        return [node["Resources"].get("CPU", 0.0) for node in require_ray().nodes() if node["Alive"]]

    def describe(self) -> str:
        cpus = self.node_cpus()
        nodes = f"{len(cpus)} node" + ("s" if len(cpus) != 1 else "")
        return f"Ray cluster: {nodes}, {sum(cpus):g} CPUs"

    def check(self, config: StylizeConfig) -> None:
        """Refuse what the cluster cannot run: an init image (on this machine only), more
        threads than a node has CPUs."""
        if isinstance(config.init, Path):
            raise NstError(
                f"`init` {config.init}: an image file does not travel to a Ray cluster; "
                "use noise, content or style"
            )
        self.threads_for(config.threads, 1)

    def threads_for(self, threads: int, cells: int) -> int:
        """CPUs a cell reserves (and ONNX Runtime's threads): `threads`, or with 0 an equal share
        of the cluster's CPUs, at most one node's."""
        cpus = self.node_cpus()
        largest = int(max(cpus, default=0))
        if threads > largest:
            raise NstError(
                f"`threads` {threads}: no node of the Ray cluster has that many CPUs "
                f"(the largest has {largest})"
            )
        return threads or max(1, min(largest, int(sum(cpus)) // max(1, cells)))

    def run(
        self, cells: list[Cell], callback_for: CallbackFor | None = None
    ) -> Iterator[tuple[Cell, CellResult]]:
        """Each cell with its result, as the cluster finishes them (no per-iteration progress)."""
        if not cells:
            return
        ray = require_ray()
        base = cells[0].config  # device, threads, backend and init are the same in every cell
        self.check(base)
        threads = self.threads_for(base.threads, len(cells))
        job = Job(str(self.model_path), self.info.sha256, base.device.value, threads, base.backend)
        task = ray.remote(stylize_cell)
        options = {
            "num_cpus": threads,
            "num_gpus": 1 if base.device is Device.CUDA else 0,
            "max_retries": self.retries,
            "retry_exceptions": False,  # an exception is the cell's own: running it again gives it again
        }
        model = [ray.put(self.model_path.read_bytes())]  # nested: not fetched by every task
        images: dict[Path, object] = {}
        uses = Counter(path for cell in cells for path in (cell.content, cell.style))

        def image(path: Path):
            """The image's object reference, put once; dropped here after its last cell is
            submitted (the tasks keep it while they need it)."""
            if path not in images:
                images[path] = ray.put(read_bytes(path))
            uses[path] -= 1
            return images[path] if uses[path] else images.pop(path)

        calls = (
            (cell, f"nst-ort {cell.stem}", (cell, job, model, image(cell.content), image(cell.style)))
            for cell in cells
        )
        for cell, ref in self.tasks(task, calls, threads, options):
            yield cell, self.result(ref, cell)

    def tasks(self, task, calls: Iterator[tuple], threads: int, options: dict) -> Iterator[tuple]:
        """Run `task` (a ray.remote function) once per (key, name, arguments) of `calls`, a few
        per task slot at once (IN_FLIGHT; the calls are made as they are submitted); yield
        (key, object reference) as each finishes. Tasks still in flight on exit are cancelled."""
        ray = require_ray()
        slots = sum(int(cpus) // threads for cpus in self.node_cpus())
        calls = iter(calls)
        pending: dict = {}
        more = True
        try:
            while more or pending:
                while more and len(pending) < max(IN_FLIGHT, IN_FLIGHT * slots):
                    call = next(calls, None)
                    if call is None:
                        more = False
                        break
                    key, name, arguments = call
                    pending[task.options(name=name, **options).remote(*arguments)] = key
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    yield pending.pop(ref), ref
        finally:
            for ref in pending:
                # Cleaning up: a task that cannot be cancelled (its driver's connection is gone)
                # must not hide why the run stopped.
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)

    def run_tiles(
        self,
        engine: Engine,
        config: StylizeConfig,
        jobs: Iterator[TileJob],
        count: int,
        style: dict,
        callback=None,
        started=None,
    ) -> Iterator[TileResult]:
        """tiles.Runner: a pass's tiles as Ray tasks, each result as it finishes (no
        per-iteration progress). The style targets go into the object store once per pass."""
        ray = require_ray()
        threads = self.threads_for(config.threads, count)
        # The device and backend resolved here, not `auto` again on each worker: a worker that
        # resolved them otherwise (bf16 on a CPU with AMX) would paint its tiles differently.
        job = Job(str(self.model_path), self.info.sha256, engine.device, threads, engine.backend)
        options = {
            "num_cpus": threads,
            "num_gpus": 1 if engine.device == "cuda" else 0,
            "max_retries": self.retries,
            "retry_exceptions": False,
        }
        model, shared = [ray.put(self.model_path.read_bytes())], ray.put(style)
        calls = ((j.tile, f"nst-ort tile {j.tile.index + 1}/{count}", (job, model, j, shared)) for j in jobs)
        for tile, ref in self.tasks(ray.remote(stylize_tile), calls, threads, options):
            yield self.tile_result(ref, tile)

    def tile_result(self, ref, tile: Tile) -> TileResult:
        """A finished tile task's result; a failure on the cluster stops the run in one line."""
        ray = require_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise task_error(exc, f"tile {tile.index + 1}") from None
        except ray.exceptions.RayError as exc:
            raise NstError(
                f"tile {tile.index + 1}: lost on the Ray cluster after {self.retries} retries "
                f"({type(exc).__name__})",
                FAILURE,
            ) from None

    def result(self, ref, cell: Cell) -> CellResult:
        """A finished task's result; a cell lost more often than `retries` fails alone."""
        ray = require_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # raised on the worker, not by the cell's input
            raise task_error(exc, f"cell {cell.label}") from None
        except ray.exceptions.RayError as exc:  # its worker or node died, once too often
            message = f"lost on the Ray cluster after {self.retries} retries ({type(exc).__name__})"
            return CellResult(Status.FAILED, message, None, None)
