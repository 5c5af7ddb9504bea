"""A tiled pass's progress on disk, beside the report, so that `nst-ort resume` goes on mid-tiles.

The folder REPORT_STEM.tiles/ holds the pass's start (`start.npz`: the previous pass's image and
Adam state at their own size, the pass and its grid) and one file per finished tile
(`tile-0003.npz`: its image, moments and records), each written atomically as the run reaches
it. A resumed run reads back the tiles of the pass it was in and runs only the others; the
folder goes once a run ends done.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from nst_ort.config import Status
from nst_ort.engine import PassInfo
from nst_ort.errors import NstError
from nst_ort.files import write_bytes
from nst_ort.loop import AdamState, StepRecord
from nst_ort.tiles import Grid, Resumed, Tile, TiledStart, TileEvent, TileResult

START = "start.npz"


def npz(meta: dict, arrays: dict[str, np.ndarray | None]) -> bytes:
    buffer = io.BytesIO()
    present = {name: value for name, value in arrays.items() if value is not None}
    np.savez(buffer, meta=np.array(json.dumps(meta)), **present)
    return buffer.getvalue()


def read_npz(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def adam_arrays(adam: AdamState | None) -> dict[str, np.ndarray | None]:
    return {"m": None, "v": None} if adam is None else {"m": adam.m, "v": adam.v}


def adam_from(arrays: dict[str, np.ndarray], t: int | None) -> AdamState | None:
    return None if t is None else AdamState(arrays["m"], arrays["v"], t)


class Checkpoint:
    """The tiles folder beside a report."""

    def __init__(self, report: Path):
        self.folder = report.with_name(report.stem + ".tiles")

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def write(self, name: str, data: bytes) -> None:
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise NstError(f"{self.folder}: cannot make the folder ({exc.strerror})") from None
        write_bytes(self.folder / name, data)

    def on_tile(self, event: TileEvent) -> None:
        """Tiling.on_tile: a pass's start (a fresh one clears the folder), each tile finished."""
        if event.start is not None and event.done == 0:
            self.clear()
            start = event.start
            meta = {
                "pass": start.index,
                "grid": start.grid.as_dict(),
                "t": None if start.adam is None else start.adam.t,
            }
            self.write(START, npz(meta, {"image": start.image, **adam_arrays(start.adam)}))
        if event.finished is not None:
            result = event.finished
            meta = {
                "tile": vars(result.tile),
                "status": Status(result.status).value,
                "message": result.message,
                "evaluations": result.evaluations,
                "info": vars(result.info),
                "records": [vars(r) for r in result.records],
                "t": None if result.adam is None else result.adam.t,
            }
            arrays = {"image": result.image, **adam_arrays(result.adam)}
            self.write(f"tile-{result.tile.index:04d}.npz", npz(meta, arrays))

    def load(self) -> Resumed | None:
        """The interrupted pass's start and finished tiles; None when there are none, or they
        cannot be read (the pass then runs all its tiles again)."""
        try:
            meta, arrays = read_npz(self.folder / START)
            grid, adam = Grid.from_dict(meta["grid"]), adam_from(arrays, meta["t"])
            start = TiledStart(meta["pass"], grid, arrays["image"], adam)
            paths = {int(p.stem.removeprefix("tile-")): p for p in self.folder.glob("tile-*.npz")}
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return Resumed(start, {index: self.loader(path) for index, path in sorted(paths.items())})

    @staticmethod
    def loader(path: Path):
        def load() -> TileResult:
            meta, arrays = read_npz(path)
            records = [StepRecord(**r) for r in meta["records"]]
            adam = adam_from(arrays, meta["t"])
            return TileResult(
                Tile(**meta["tile"]),
                arrays["image"],
                adam,
                records,
                Status(meta["status"]),
                meta["message"],
                meta["evaluations"],
                PassInfo(**meta["info"]),
            )

        return load
