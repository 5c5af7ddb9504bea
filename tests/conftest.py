"""Shared fixtures: one tiny random-weight export per test session, a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Every test writes its cache (models, artifacts, weights) under a session tmp folder."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["NST_ORT_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-weight VGG-16 export (avg pooling) with the default layers, at the default path.

    $NST_ORT_TEST_MODEL names that export made beforehand (`nst-ort export --weights random -o
    PATH`), for environments without torch, such as plain onnxruntime's CI step.
    """
    if os.environ.get("NST_ORT_TEST_MODEL"):
        return Path(os.environ["NST_ORT_TEST_MODEL"])
    from export.exporter import ExportSpec, export_model
    from export.weights import random_weights
    from nst_ort.contract import Arch

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    export_model(path, ExportSpec(), random_weights(Arch.VGG16, seed=0))
    return path


def _pattern(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, structured RGB image: gradients and a few blobs, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 7.0)], axis=2)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, 20)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - blob) + blob * rng.uniform(0, 1, 3).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


@pytest.fixture
def make_image(tmp_path):
    """Write a synthetic PNG (or other format by extension) under tmp_path and return its path."""
    from PIL import Image

    def make(name: str = "image.png", height: int = 64, width: int = 80, seed: int = 0) -> Path:
        path = tmp_path / name
        pixels = (_pattern(height, width, seed) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(path)
        return path

    return make


@pytest.fixture
def shared_images() -> Path:
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is not present")
    return SHARED_IMAGES
