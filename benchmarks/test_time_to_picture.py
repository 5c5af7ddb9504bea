"""Time to a finished picture: the default pipeline against the default it replaces, side by side.

Bar, at 512 px: the new default (`StylizeConfig()` as it is when this runs, its `backend` auto
resolved) takes tubingen.jpg + starry_night.jpg from noise to the final picture in at most
0.35x the seconds of today's default (time_to_picture.today(): 900 Adam steps over the ladder
128..512, 300 + 4 x 150, float32 ort-graph), and its picture's artifact score
(nst_ort.quality) is at most 10% higher.

Both run in one process, in turns (time_to_picture.py), each from a fresh Engine to its final
image. More runs join with `--ttp-run NAME=JSON` (StylizeConfig() with those fields) and
`--ttp-backends` (the new default once more on each backend). Every run's picture, its report,
a sheet of the pictures side by side and results.json / results.md go to `--ttp-output` (a
temporary folder otherwise; never into the repository).

    pytest benchmarks/test_time_to_picture.py -s --bench-512 --ttp-output /tmp/ttp   # ~15 min
    pytest benchmarks/test_time_to_picture.py -s --ttp-size 256 --ttp-output /tmp/ttp256   # no bar

Needs the default model (`nst-ort export`) and ../shared/images, else it skips. `--bench-quick`
runs it at 128 px, a hundredth of the steps, on a random-weight export: the code path only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks import time_to_picture as ttp
from benchmarks.report import cpu_model, load_average
from nst_ort.config import Status, StylizeConfig
from nst_ort.contract import Arch
from nst_ort.imageio import fit_longest, load_image
from nst_ort.paths import default_model_path

# Resolved at import, before any fixture can point NST_ORT_CACHE at a private cache.
DEFAULT_MODEL = default_model_path()
SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"
PAIR = ("tubingen.jpg", "starry_night.jpg")
QUICK_SIZE, QUICK_STEPS = 128, 0.01
BAR_SIZE = 512
SECONDS_BAR = 0.35  # new default's seconds / today's
ARTIFACT_BAR = 1.10  # new default's artifact score / today's


@pytest.fixture(scope="module")
def picture_size(pytestconfig) -> int:
    opt = pytestconfig.getoption
    if opt("--bench-quick"):
        return QUICK_SIZE
    if opt("--ttp-size"):
        return opt("--ttp-size")
    if opt("--bench-512"):
        return BAR_SIZE
    pytest.skip("the default pipeline at 512 px, about 15 minutes on 2 cores: --bench-512 or --ttp-size N")


@pytest.fixture(scope="module")
def images(picture_size) -> tuple[np.ndarray, np.ndarray]:
    paths = [SHARED_IMAGES / name for name in PAIR]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"{' and '.join(PAIR)} are not in {SHARED_IMAGES}")
    return load_image(paths[0]), load_image(paths[1])


@pytest.fixture(scope="module")
def model(pytestconfig, cases, images) -> Path:
    if pytestconfig.getoption("--bench-quick"):
        return cases.model(Arch.VGG16)  # random weights: a smoke run claims nothing
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no default model at {DEFAULT_MODEL}: run `nst-ort export`")
    return DEFAULT_MODEL


def planned_runs(pytestconfig, model: Path, size: int) -> list[ttp.Run]:
    """today first (the reference of every ratio), the new default, then the extra runs."""
    new = dataclasses.replace(StylizeConfig(), model=model)
    configs = {"today": dataclasses.replace(ttp.today(), model=model), "new": new}
    for spec in pytestconfig.getoption("--ttp-run"):
        name, _, fields = spec.partition("=")
        configs[name] = ttp.with_fields(new, json.loads(fields))
    for backend in filter(None, pytestconfig.getoption("--ttp-backends").split(",")):
        configs[f"new-{backend}"] = dataclasses.replace(new, backend=backend)
    quick = pytestconfig.getoption("--bench-quick")
    runs = []
    for name, config in configs.items():
        config = ttp.at_size(config, size)
        runs.append(ttp.Run(name, ttp.scaled_steps(config, QUICK_STEPS) if quick else config))
    return runs


def test_time_to_a_finished_picture(benchmark, pytestconfig, tmp_path_factory, picture_size, images, model):
    content, style, size = *images, picture_size
    runs = planned_runs(pytestconfig, model, size)
    output = pytestconfig.getoption("--ttp-output") or tmp_path_factory.mktemp("time_to_picture")
    before = load_average()
    benchmark.pedantic(ttp.run_in_turns, args=(runs, content, style), rounds=1, iterations=1)
    conditions = (
        f"{' + '.join(PAIR)} at {size} px, {model.name} ({model}); {cpu_model()}, "
        f"{os.cpu_count()} cores, load average {before} before, {load_average()} after; "
        f"runs in turns of {ttp.TURN_SECONDS} s"
    )
    rows = ttp.summary(runs, reference=runs[0].name)
    ttp.write(Path(output), runs, rows, conditions)
    benchmark.extra_info.update({"conditions": conditions, "runs": rows, "output": str(output)})
    print(f"\n{ttp.markdown(rows, conditions, runs[0].name)}pictures and tables: {output}")

    height, width = fit_longest(*content.shape[:2], size)
    for run, row in zip(runs, rows, strict=True):
        assert run.report["status"] in (Status.DONE, Status.CONVERGED), (run.name, run.report["message"])
        assert run.image.shape == (height, width, 3), run.name
        assert np.isfinite(row["loss"]) and row["evaluations"] >= len(row["passes"]), run.name
    today, new = rows[0], rows[1]
    if size == BAR_SIZE and not pytestconfig.getoption("--bench-quick"):
        assert new["seconds"] <= SECONDS_BAR * today["seconds"], (new["seconds"], today["seconds"])
        assert new["artifact_score"] <= ARTIFACT_BAR * today["artifact_score"]
