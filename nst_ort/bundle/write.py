"""Bundles: one content/style pair at one size, as a folder an embedded ONNX Runtime can run.

A bundle holds what one backend's driver needs (bundle/graph.py: the gradient graph and its
inputs, for any ONNX Runtime; bundle/training.py: onnxruntime-training's artifacts), the initial
image as PNG, and bundle.json, which says everything a driver needs: file names, the image's
name, shape and pixel range, the model's inputs and outputs, the optimiser and its settings,
the steps of the loop. The reference driver is bundle/driver.py; others live under examples/.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx

from nst_ort import contract
from nst_ort.bundle.driver import FORMAT, MANIFEST
from nst_ort.config import InitKind, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import FAILURE, NstError
from nst_ort.imageio import resize, save_image, to_nchw, to_uint8
from nst_ort.passes import initial_image
from nst_ort.run import ImageLike, prepare

# Backend -> the module whose write() puts its files into a bundle and whose VERSION is the
# bundle's. Adam, not L-BFGS (a driver needs no scipy), from noise (the paper's start).
WRITERS = {"ort-graph": "nst_ort.bundle.graph", "ort-training": "nst_ort.bundle.training"}
DEFAULTS = StylizeConfig(iterations=500, init=InitKind.NOISE, backend="ort-graph")
INITIAL_IMAGE = "initial.png"


@dataclass(frozen=True)
class BundleInfo:
    directory: Path
    height: int
    width: int
    bytes: int  # total size of the folder
    artifacts_built: bool  # False when the per-size artifacts came from the cache


def check_destination(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise NstError(f"{directory}: exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()):
        raise NstError(f"{directory}: folder exists and is not empty; choose a new folder")
    if not directory.parent.is_dir():
        raise NstError(f"{directory.parent}: no such folder")
    if not os.access(directory.parent, os.W_OK):
        raise NstError(f"{directory.parent}: folder is not writable")


def _source_name(image: ImageLike) -> str:
    return "array" if isinstance(image, np.ndarray) else Path(image).name


def make_bundle(
    content: ImageLike,
    styles: list[ImageLike],
    directory: Path,
    config: StylizeConfig | None = None,
    engine: Engine | None = None,
) -> BundleInfo:
    """Write a bundle for `content` and `styles` at `config.size` into `directory`.

    `directory` must not exist or be empty; it appears whole or not at all. `config.optimizer`
    is ignored (bundles run Adam); `config.lr` and `config.iterations` become the bundle's;
    `config.backend` picks the kind of bundle (WRITERS), whatever `engine`'s backend.
    """
    config = config or DEFAULTS
    if config.backend not in WRITERS:
        raise NstError(f"`backend` {config.backend}: bundles are {' or '.join(WRITERS)}")
    directory = Path(directory)
    check_destination(directory)
    writer = importlib.import_module(WRITERS[config.backend])
    run = prepare(config, content, styles, engine, tiled=False)  # a bundle runs whole
    engine = run.engine
    height, width = run.size
    content_image = resize(run.content, height, width)
    targets = engine.targets(
        config.loss, content_image, run.styles, run.blend, config.style_scale, (height, width)
    )
    # Start from an 8-bit image so that initial.png holds exactly the image the run starts from.
    init = (
        to_uint8(initial_image(config, height, width, content_image, run.styles)).astype(np.float32) / 255.0
    )
    values = {**targets.frozen, contract.IMAGE: to_nchw(init)}

    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        # mkdtemp makes the folder private; give it the permissions a plain mkdir would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        sections, built = writer.write(engine, config, values, tmp)
        save_image(tmp / INITIAL_IMAGE, init)
        manifest = _manifest(engine, config, writer.VERSION, sections, (height, width))
        manifest["source"].update(
            content=_source_name(content), styles=[_source_name(s) for s in styles], style_blend=run.blend
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        total = sum(p.stat().st_size for p in tmp.iterdir())
        if directory.is_dir():
            directory.rmdir()  # empty, checked above
        try:
            os.rename(tmp, directory)
        except OSError as exc:
            raise NstError(f"{directory}: cannot create the bundle ({exc.strerror})", FAILURE) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return BundleInfo(directory, height, width, total, built)


def _manifest(
    engine: Engine, config: StylizeConfig, version: int, sections: dict, size: tuple[int, int]
) -> dict:
    """bundle.json: the contract a driver needs (the writer's sections within), then its source."""
    spec = config.loss
    return {
        "format": FORMAT,
        "version": version,
        "backend": config.backend,
        "files": {**sections["files"], "initial_image": INITIAL_IMAGE},
        "image": {
            "name": contract.IMAGE,
            "shape": [1, 3, *size],
            "dtype": "float32",
            "layout": "NCHW",
            "channels": "RGB",
            "range": [0.0, 1.0],
            # The VGG preprocessing is inside the graph: drivers feed plain RGB in [0, 1].
            "preprocessing_in_graph": engine.info.preprocessing,
        },
        **{key: value for key, value in sections.items() if key != "files"},
        "loss": {
            "content_layers": spec.content_layers,
            "style_layers": spec.style_layers,
            "content_weight": spec.content_weight,
            "style_weight": spec.style_weight,
            "tv_weight": spec.tv_weight,
            "tv_chroma": spec.tv_chroma,
            # Each term relative to its target (targets.normalized_loss): the weight inputs hold
            # these weights times 2/ΣP² (content), 4N²/ΣA² (style) or 1/(H·W) (TV).
            "normalize": spec.normalize,
        },
        "source": {
            "model": {
                "file": engine.info.path.name,
                "sha256": engine.info.sha256,
                "arch": engine.info.arch.value,
                "weights": engine.info.weights,
                "pooling": engine.info.pooling.value,
            },
            "size": config.size,
            "style_scale": config.style_scale,
            "style_blur": config.style_blur,
            "init": config.init.value if isinstance(config.init, InitKind) else Path(config.init).name,
            "seed": config.seed,
        },
        "written_with": _versions(),
    }


def _versions() -> dict[str, str]:
    from nst_ort.backends.ort import require_ort

    try:
        version = metadata.version("nst-ort")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"nst_ort": version, "onnxruntime": require_ort().__version__, "onnx": onnx.__version__}
