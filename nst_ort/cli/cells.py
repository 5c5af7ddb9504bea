"""A sweep's or a batch's cells from the command line: where they run, what the terminal shows,
and how the command ends (README, "Sweeps and batches on a Ray cluster")."""

from __future__ import annotations

from pathlib import Path

import typer

from nst_ort import errors
from nst_ort.cli.progress import SweepView, err, interrupt_on_sigterm, out
from nst_ort.config import Device, Status
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.studies import cluster
from nst_ort.studies.grid import Sweep
from nst_ort.studies.local import Local
from nst_ort.studies.sweep import run_sweep


def make_runner(
    model: Path | None, device: Device, threads: int, backend: str, jobs: int, ray: str | None
) -> Local | cluster.Cluster:
    """Local (this process or `jobs` processes) or, with `ray`, the Ray cluster at that address;
    a cluster is connected to when the runner is entered."""
    if ray is None:
        return Local(Engine(model, device, threads, backend=backend), jobs)
    if jobs != 1:
        raise NstError("--jobs runs cells on this machine; with --ray the cluster's CPUs decide")
    cluster.require_ray()
    return cluster.Cluster(model, ray)


def check_folder(output_dir: Path) -> None:
    """The output folder: made when the cells are about to run, but refused at once if it cannot."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NstError(f"{output_dir}: exists and is not a folder")


def make_folder(output_dir: Path) -> None:
    check_folder(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NstError(f"{output_dir}: cannot make the folder ({exc.strerror})") from None


def run_cells(sweep: Sweep, output_dir: Path, runner: Local | cluster.Cluster, quiet: bool) -> None:
    """Run the cells not done yet with progress, write the summary, and end as the cells did:
    0, 1 when a cell failed or stopped on a non-finite loss, 130 when interrupted."""
    rows, cols = sweep.shape
    count = rows * cols
    base = sweep.base
    with runner:
        runner.check(base)
        make_folder(output_dir)  # after connecting: a cluster that cannot be reached leaves nothing
        if not quiet:
            info = runner.model_info
            if sweep.is_batch:
                shape = f"batch: {rows} content x {cols} style images"
            else:
                grid = f"{rows} x {cols}" if sweep.rows else f"{count}"
                shape = f"sweep: {grid} cells ({' x '.join(a.title for a in sweep.axes)})"
            err.print(
                f"{shape} at {base.size} px, {base.iterations} iterations each; {runner.describe()}; "
                f"model: {info.path} ({info.weights})",
                highlight=False,
            )
        interrupt_on_sigterm()
        with SweepView(count, quiet) as view:
            outcome = run_sweep(sweep, output_dir, runner, view.on_cell, view.callback_for)
    if outcome.skipped and not quiet:
        err.print(
            f"{outcome.skipped} of {count} cells already done in {output_dir}, skipped: "
            + ", ".join(view.skipped),
            highlight=False,
        )
    failed = [r for r in outcome.records if r["status"] == Status.FAILED]
    if outcome.interrupted:
        done = len(outcome.records) - len(failed)
        err.print(
            f"interrupted after {done} of {count} cells; run the same command again to resume",
            highlight=False,
        )
        raise typer.Exit(errors.INTERRUPTED)
    if not quiet:
        if outcome.ran == 0:
            rewrote = "; wrote the missing sheet and results" if outcome.wrote_summary else "; nothing to do"
            out.print(f"all {count} cells already done in {output_dir}{rewrote}", highlight=False)
        else:
            wrote = "sheet.png, results.csv, results.json" if outcome.wrote_summary else "nothing new"
            out.print(
                f"ran {outcome.ran} cells, {outcome.skipped} already done; wrote {output_dir}/ ({wrote})",
                highlight=False,
            )
    if failed:
        first = failed[0]
        label = " | ".join(x for x in (first["row_label"], first["col_label"]) if x)
        raise NstError(
            f"{len(failed)} of {count} cells failed (see results.csv), the others are done; "
            f"{label}: {first['message']}",
            errors.FAILURE,
        )
    nonfinite = [r for r in outcome.records if r["status"] == Status.NONFINITE]
    if nonfinite:
        raise NstError(
            f"{len(nonfinite)} cells stopped on a non-finite loss (see results.csv); their last good "
            "images are kept",
            errors.FAILURE,
        )
