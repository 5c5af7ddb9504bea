"""Tiny bundles, one of each kind per session, and the engines, inputs and configs they were made with.

`bundle` is an ort-training bundle (version 1); `graph_bundle` an ort-graph one (version 2) from
the same images, in a folder of bundles (`graph_bundles.root`) that the page's tests serve,
beside `graph_bundles.own`: one written from a second photo and painting at the same size, what
the page must give when the user picks those two."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nst_ort.bundle import make_bundle
from nst_ort.config import Device, InitKind, StylizeConfig
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
    """The engine on the backend bundles hold: its gradient runs the bundle's kernels."""
    skip_without_training()
    return Engine(tiny_model, "cpu", threads=1, backend="ort-training")


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    return _write_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="session")
def config(tiny_model) -> StylizeConfig:
    return StylizeConfig(
        model=tiny_model,
        size=64,
        iterations=ITERATIONS,
        lr=LR,
        device=Device.CPU,
        threads=1,
        backend="ort-training",
        # From the photo, as the page starts when it is given the user's own photo.
        init=InitKind.CONTENT,
    )


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, inputs, config, engine) -> Path:
    directory = tmp_path_factory.mktemp("bundles") / "tiny"
    content, style = inputs
    make_bundle(content, [style], directory, config, engine)
    return directory


def training_bundle_stub(folder: Path) -> Path:
    """A folder that looks like a version 1 (ort-training) bundle, down to its files, which are
    empty: for the messages of drivers that cannot run one, where onnxruntime-training is not
    installed to write a real one."""
    folder.mkdir()
    files = {
        "training_model": "training_model.onnx",
        "optimizer_model": "optimizer_model.onnx",
        "checkpoint": "checkpoint",
        "initial_image": "initial.png",
    }
    for name in files.values():
        (folder / name).write_bytes(b"")
    manifest = {
        "format": "nst-ort-bundle",
        "version": 1,
        "files": files,
        "image": {"name": "image", "shape": [1, 3, 51, 64]},
        "training_model": {"inputs": [], "outputs": [{"name": "loss", "shape": [], "dtype": "float32"}]},
        "optimizer": {"name": "adam", "learning_rate": LR, "iterations": ITERATIONS, "clip": [0.0, 1.0]},
    }
    (folder / "bundle.json").write_text(json.dumps(manifest))
    return folder


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGB"
        return np.asarray(image).astype(np.int32)


@pytest.fixture(scope="session")
def graph_engine(tiny_model) -> Engine:
    """The engine of `nst-ort stylize`'s default backend, whose gradient graph the bundle holds."""
    return Engine(tiny_model, "cpu", threads=1, backend="ort-graph")


@pytest.fixture(scope="session")
def graph_config(config) -> StylizeConfig:
    return replace(config, backend="ort-graph")


@dataclass(frozen=True)
class GraphBundles:
    root: Path  # the folder that holds them (served at /bundle/ in the page's tests)
    tiny: Path  # from `inputs`, 64x51 px
    own: Path  # from own_content and own_style, at tiny's size, starting from own_content
    own_content: Path
    own_style: Path
    # The same with the style blur (graph_config's): the page blurs a painting picked for it as
    # its run blurred its own (bundle.json `source.style_blur`).
    own_blurred: Path


def _write_own_images(folder: Path) -> tuple[Path, Path]:
    """A second photo and painting, 64x51 px: the size of `tiny`, so nothing is resized."""
    y, x = np.mgrid[0:51, 0:64].astype(np.float32)
    content = np.stack([0.5 + 0.5 * np.cos(x / 9), y / 51, 0.3 + 0.4 * np.sin(x * y / 200)], axis=2)
    style = np.stack(
        [(x // 8 % 2) * 0.8 + 0.1, (y // 6 % 2) * 0.7 + 0.2, 0.5 + 0.5 * np.sin(x / 2 + y / 3)], axis=2
    )
    paths = folder / "own-content.png", folder / "own-style.png"
    for path, image in zip(paths, (content, style), strict=True):
        Image.fromarray(to_uint8(image)).save(path)
    return paths


@pytest.fixture(scope="session")
def page_config(graph_config) -> StylizeConfig:
    """graph_config without the style blur: the page's tiny bundle is written with it."""
    # With the blurred targets of `inputs`, a few pixels of this random network's gradient nearly
    # cancel, where Adam's normalised step turns WebAssembly's other summation order into up to
    # 0.01 after 8 steps (test_page.py's loss-curve test runs 8). The blur's targets are checked
    # against the engine in test_graph.py, and the page's blur of a picked painting against the
    # engine's on `own_blurred`.
    return replace(graph_config, style_blur=0.0)


@pytest.fixture(scope="session")
def graph_bundles(tmp_path_factory, inputs, graph_config, page_config, graph_engine) -> GraphBundles:
    root = tmp_path_factory.mktemp("graph-bundles")
    content, style = inputs
    make_bundle(content, [style], root / "tiny", page_config, graph_engine)
    own_content, own_style = _write_own_images(tmp_path_factory.mktemp("own-images"))
    make_bundle(own_content, [own_style], root / "own", page_config, graph_engine)
    make_bundle(own_content, [own_style], root / "own-blurred", graph_config, graph_engine)
    return GraphBundles(root, root / "tiny", root / "own", own_content, own_style, root / "own-blurred")


@pytest.fixture(scope="session")
def graph_bundle(graph_bundles) -> Path:
    return graph_bundles.tiny
