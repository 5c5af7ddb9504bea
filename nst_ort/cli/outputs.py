"""What a command leaves behind: output paths checked before any work, and a run's end.

A run's image and report are written whatever its outcome; its status decides the exit code
(config.Status.exit_code) and the one line that says what happened.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from PIL import Image

from nst_ort import contract
from nst_ort.api import StylizeResult
from nst_ort.cli.progress import err, out
from nst_ort.config import Status
from nst_ort.errors import NstError
from nst_ort.imageio import save_image


def check_output(output: Path, inputs: list[Path]) -> None:
    """An image output: a known extension, in a writable folder, and none of the inputs."""
    if output.is_dir():
        raise NstError(f"{output}: is a directory")
    if output.suffix.lower() not in Image.registered_extensions():
        raise NstError(f"{output}: unknown image extension '{output.suffix}' (use .png or .jpg)")
    if not output.parent.is_dir():
        raise NstError(f"{output.parent}: no such folder")
    if not os.access(output.parent, os.W_OK):
        raise NstError(f"{output.parent}: folder is not writable")
    for path in inputs:
        if path.exists() and output.exists() and output.samefile(path):
            raise NstError(f"{output}: is one of the inputs; choose another output path")


def check_output_file(path: Path, inputs: list[Path]) -> None:
    """Another output (a report): a file in an existing folder, and none of the inputs."""
    if path.is_dir():
        raise NstError(f"{path}: is a directory")
    if not path.parent.is_dir():
        raise NstError(f"{path.parent}: no such folder")
    for other in inputs:
        if path.exists() and other.exists() and path.samefile(other):
            raise NstError(f"{path}: is one of the inputs; choose another path")


def exit_if_stopped(status: Status, message: str, output: Path, again: str = "") -> None:
    """A run that stopped early ends the command: an error line (NaN, inf) or the interrupt line."""
    if status is Status.NONFINITE:
        raise NstError(f"stopped: {message}; last good image saved to {output}", status.exit_code)
    if status is Status.INTERRUPTED:
        err.print(f"interrupted: last image saved to {output}{again}", highlight=False)
        raise typer.Exit(status.exit_code)


def finish_run(
    result: StylizeResult, output: Path, report: Path | None, quiet: bool, previous: dict | None = None
) -> None:
    """Save the image and the report, print the summary; exit codes for a run that stopped."""
    save_image(output, result.image)
    if previous is not None:
        result.report.continue_from(previous)
    data = result.report.finish(result.status, result.message, output, report)
    if report is not None:
        result.report.write(report)
    again = f"; continue with: nst-ort resume {report}" if report is not None else ""
    exit_if_stopped(result.status, result.message, output, again)
    if not quiet:
        final = {name: data.get("final", {}).get(name, float("nan")) for name in contract.TERMS}
        out.print(
            f"{result.status}: {output} in {data['total_seconds']:.1f} s, {data['evaluations']} "
            f"evaluations; loss {final[contract.LOSS]:.4g} (content {final[contract.LOSS_CONTENT]:.4g}, "
            f"style {final[contract.LOSS_STYLE]:.4g}, tv {final[contract.LOSS_TV]:.4g})",
            highlight=False,
        )
