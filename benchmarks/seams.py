"""Do a tiled run's seams show? Artifact scores of strips across the last tiled pass's seams
against strips of the same size inside its tiles, and the jump between neighbouring pixel rows
and columns at the seams against everywhere else.

    python -m benchmarks.seams OUT.png REPORT.json

A strip is STRIP px wide across a seam (the middle of an overlap) and as long as the image; the
strips elsewhere are those every STRIP/2 px that hold no seam. nst_ort.quality's artifact
score sees a grid or a weave; a seam would rather be a line of sharper change, which the jump
profile sees: the mean absolute difference between a column and the next, at the seam's band,
over its median elsewhere.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from nst_ort.imageio import load_image
from nst_ort.quality import artifact_score
from nst_ort.tiles import Grid

STRIP = 64  # px: the artifact score's Welch tile


def strip_score(image: np.ndarray, start: int, axis: int) -> float:
    part = image[:, start : start + STRIP] if axis == 1 else image[start : start + STRIP]
    return artifact_score(part)


def strips(image: np.ndarray, seams: list[float], axis: int) -> tuple[list[float], list[float]]:
    """Artifact scores of STRIP-wide strips centred on the seams, and of those every STRIP/2 px
    that hold no seam ("elsewhere")."""
    length = image.shape[axis]
    at = [int(min(max(round(s) - STRIP // 2, 0), length - STRIP)) for s in seams]
    clear = [
        start
        for start in range(0, length - STRIP + 1, STRIP // 2)
        if not any(start <= seam < start + STRIP for seam in seams)
    ]
    return [strip_score(image, s, axis) for s in at], [strip_score(image, s, axis) for s in clear]


def jumps(image: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute difference between each column (axis 1) or row (axis 0) and the next."""
    other = 0 if axis == 1 else 1
    return np.abs(np.diff(image, axis=axis)).mean(axis=(other, 2))


def measure(image: np.ndarray, grid: Grid) -> dict:
    """Per direction: the strips' scores across seams and inside tiles, and the jump ratio."""
    down, across = grid.seams()
    found = {}
    for name, seams, axis in (("vertical", across, 1), ("horizontal", down, 0)):
        if not seams:
            continue
        profile = jumps(image, axis)
        band = np.zeros(profile.size, bool)
        for seam in seams:
            band[max(0, int(seam) - STRIP // 2) : int(seam) + STRIP // 2] = True
        seam_scores, elsewhere = strips(image, seams, axis)
        found[name] = {
            "seams": seams,
            "seam_scores": seam_scores,
            "elsewhere_scores": elsewhere,
            "jump_ratio": float(profile[band].max() / np.median(profile[~band])),
            "jump_ratio_elsewhere": float(profile[~band].max() / np.median(profile[~band])),
        }
    return found


def main(image_path: str, report_path: str) -> None:
    report = json.loads(Path(report_path).read_text())
    tiled = [p for p in report["passes"] if p.get("grid")]
    if not tiled:
        raise SystemExit("no tiled pass in this report")
    grid = Grid.from_dict(tiled[-1]["grid"])
    image = load_image(Path(image_path))
    if image.shape[:2] != (grid.height, grid.width):
        raise SystemExit(
            f"the image is {image.shape[1]}x{image.shape[0]}, the grid {grid.width}x{grid.height}"
        )
    print(f"{grid.width}x{grid.height}, {grid.count} tiles of {grid.tile_width}x{grid.tile_height}")
    print(f"artifact score of the whole image: {artifact_score(image):.3f}")
    for name, found in measure(image, grid).items():
        seams, elsewhere = found["seam_scores"], found["elsewhere_scores"]
        verdict = "no higher" if max(seams) <= max(elsewhere) else "HIGHER"
        print(
            f"{name} seams at {', '.join(f'{s:.0f}' for s in found['seams'])}: strip scores "
            f"{', '.join(f'{s:.3f}' for s in seams)}; elsewhere {len(elsewhere)} strips, median "
            f"{np.median(elsewhere):.3f}, highest {max(elsewhere):.3f} ({verdict}); largest jump at "
            f"a seam {found['jump_ratio']:.2f} x the median, elsewhere {found['jump_ratio_elsewhere']:.2f} x"
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])
