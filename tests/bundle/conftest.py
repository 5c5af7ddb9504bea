"""One tiny bundle per session, and the engine, inputs and config it was made with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_ort.bundle import make_bundle
from nst_ort.config import Device, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.imageio import to_uint8
from tests.requires import skip_without_training

ITERATIONS = 8
LR = 0.02


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    y, x = np.mgrid[0:64, 0:80].astype(np.float32)
    content = np.stack([x / 80, y / 64, 0.5 + 0.5 * np.sin((x + y) / 7)], axis=2)
    style = np.stack([0.5 + 0.5 * np.sin(x / 3), 0.5 + 0.5 * np.cos(y / 4), (x * y) % 17 / 17], axis=2)
    paths = folder / "content.png", folder / "style.png"
    for path, image in zip(paths, (content, style), strict=True):
        Image.fromarray(to_uint8(image)).save(path)
    return paths


@pytest.fixture(scope="session")
def engine(tiny_model) -> Engine:
    """The engine on the backend bundles hold: its Adam runs the bundle's kernels, so the images
    agree to rounding (the host Adam of ort-graph parts from it step by step, as test_graph.py
    says, and would make the comparison with the drivers depend on the machine)."""
    skip_without_training()
    return Engine(tiny_model, "cpu", threads=1, backend="ort-training")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return _write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="session")
def config(tiny_model) -> StylizeConfig:
    return StylizeConfig(
        model=tiny_model, size=64, iterations=ITERATIONS, lr=LR, device=Device.CPU, threads=1
    )


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, inputs, config, engine) -> Path:
    directory = tmp_path_factory.mktemp("bundles") / "tiny"
    content, style = inputs
    make_bundle(content, [style], directory, config, engine)
    return directory


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image).astype(np.int32)
