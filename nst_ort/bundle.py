"""Bundles: one content/style pair at one size, as a folder any ONNX Runtime training API can run.

A bundle holds the training model and optimizer model of the cached per-size artifacts, a
checkpoint whose values are this run's (the initial image as the trainable parameter; the
content and style targets and the loss weights as frozen parameters), the initial image as PNG,
and bundle.json, which says everything a driver needs: file names, the image parameter's name,
shape and pixel range, the loss outputs, the optimiser and its settings, the steps of the loop.
The reference driver is `nst_ort.bundle_driver`; others live under examples/.

The optimiser is Adam, run by ONNX Runtime itself (its optimizer model), because that is the
only optimiser every training API has; L-BFGS needs scipy, which an embedded runtime lacks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from nst_ort import contract
from nst_ort.api import ImageLike, as_image, normalized_blend
from nst_ort.backends import artifacts as artifact_cache
from nst_ort.backends.ort import session_options
from nst_ort.bundle_driver import FORMAT, MANIFEST, VERSION, training_api
from nst_ort.config import InitKind, StylizeConfig
from nst_ort.engine import Engine
from nst_ort.errors import FAILURE, NstError
from nst_ort.graphs import weight_values
from nst_ort.imageio import fit_longest, resize, save_image, to_nchw, to_uint8
from nst_ort.scales import initial_image

FILES = {
    "training_model": "training_model.onnx",
    "optimizer_model": "optimizer_model.onnx",
    "checkpoint": "checkpoint",
    "initial_image": "initial.png",
}
FIXED_LEARNING_RATE = "bundle.learning_rate"


@dataclass(frozen=True)
class BundleInfo:
    directory: Path
    height: int
    width: int
    bytes: int  # total size of the folder
    artifacts_built: bool  # False when the per-size artifacts came from the cache


def fix_learning_rate(source: Path, destination: Path, lr: float) -> dict:
    """Copy the optimizer model with its learning rate fixed to `lr`; return Adam's settings.

    ONNX Runtime feeds the optimizer model a `learning_rate` input from its own state, but that
    state cannot be set everywhere: a checkpoint restores only the initial learning rate (the
    current one falls back to 0.001), and the JavaScript training API has no setter. A constant
    in the graph gives every driver the same steps. The input stays, unused, because ONNX Runtime
    checks the optimizer model's input names.
    """
    model = onnx.load(str(source))
    graph = model.graph
    adam = next(node for node in graph.node if node.op_type == "AdamWOptimizer")
    constant = helper.make_node(
        "Constant",
        [],
        [FIXED_LEARNING_RATE],
        value=numpy_helper.from_array(np.array([lr], np.float32), FIXED_LEARNING_RATE),
    )
    graph.node.insert(0, constant)
    adam.input[0] = FIXED_LEARNING_RATE
    onnx.save(model, str(destination))
    attrs = {a.name: helper.get_attribute_value(a) for a in adam.attribute}
    return {
        "name": "adam",
        "learning_rate": lr,
        "betas": [_float32(attrs["alpha"]), _float32(attrs["beta"])],
        "eps": _float32(attrs["epsilon"]),
        "weight_decay": _float32(attrs["weight_decay"]),
        "bias_correction": bool(attrs["correct_bias"]),
        # adam_mode 0 is torch.optim.Adam's update; 1 is Hugging Face's AdamW (eps inside).
        "update": "torch.optim.Adam" if attrs.get("adam_mode", 0) == 0 else "transformers.AdamW",
    }


def write_checkpoint(
    entry: artifact_cache.Artifacts, values: dict[str, np.ndarray], path: Path
) -> tuple[list[str], list[str]]:
    """The cached checkpoint with this run's image, targets and weights written into it.

    Returns the training model's user inputs and outputs, as every training API reports them.
    """
    api = training_api()
    state = api.CheckpointState.load_checkpoint(str(entry.checkpoint))
    # Parameters get their buffers when a Module is created (setting one before segfaults), and
    # copying into them needs the live Module.
    module = api.Module(str(entry.training_model), state, device="cpu", session_options=session_options())
    parameters = state.parameters
    missing = set(entry.frozen) | {contract.IMAGE}
    missing -= set(values)
    if missing:
        raise ValueError(f"no values for parameters {sorted(missing)}")
    for name, value in values.items():
        parameters[name].data = np.array(value, np.float32, order="C")  # keeps 0-d shapes
    api.CheckpointState.save_checkpoint(state, str(path))
    return list(module.input_names()), list(module.output_names())


def _float32(value: float) -> float:
    """The shortest decimal of a float32 attribute: 1e-08, not 9.99999993922529e-09."""
    return float(str(np.float32(value)))


def _check_destination(directory: Path) -> None:
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
    is ignored (bundles run Adam); `config.lr` and `config.iterations` become the bundle's.
    """
    config = config or StylizeConfig()
    directory = Path(directory)
    _check_destination(directory)
    if not styles:
        raise NstError("at least one style image is needed")
    # Bundles are onnxruntime-training artifacts, whatever backend stylize would use.
    engine = engine or Engine(config.model, config.device.value, config.threads, backend="ort-training")
    spec = config.loss
    engine.check_layers(spec)
    content_image = as_image(content)
    style_images = [as_image(s) for s in styles]
    blend = normalized_blend(config.style_blend, len(style_images))
    height, width = fit_longest(*content_image.shape[:2], config.size)
    content_image = resize(content_image, height, width)
    targets = engine.targets(spec, content_image, style_images, blend, config.style_scale, (height, width))
    # Start from an 8-bit image so that initial.png holds exactly the checkpoint's image.
    init = (
        to_uint8(initial_image(config, height, width, content_image, style_images)).astype(np.float32) / 255.0
    )
    entry = artifact_cache.ensure(engine.model, engine.info.sha256, spec, height, width, engine.cache_root)

    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        # mkdtemp makes the folder private; give it the permissions a plain mkdir would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        shutil.copyfile(entry.training_model, tmp / FILES["training_model"])
        optimizer = fix_learning_rate(entry.optimizer_model, tmp / FILES["optimizer_model"], config.lr)
        values = {**targets.values, **weight_values(spec), contract.IMAGE: to_nchw(init)}
        session_io = write_checkpoint(entry, values, tmp / FILES["checkpoint"])
        save_image(tmp / FILES["initial_image"], init)
        manifest = _manifest(engine, config, entry, optimizer, session_io, (height, width))
        manifest["source"].update(
            content=_source_name(content), styles=[_source_name(s) for s in styles], style_blend=blend
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
    return BundleInfo(directory, height, width, total, entry.built)


def _manifest(
    engine: Engine,
    config: StylizeConfig,
    entry: artifact_cache.Artifacts,
    optimizer: dict,
    session_io: tuple[list[str], list[str]],
    size: tuple[int, int],
) -> dict:
    """bundle.json: the contract a driver needs, then where the bundle came from."""
    spec = config.loss
    inputs, outputs = session_io
    return {
        "format": FORMAT,
        "version": VERSION,
        "files": FILES,
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
        "parameters": {"trainable": [contract.IMAGE], "frozen": sorted(entry.frozen)},
        "training_model": {
            # What a training session reports: the image and the frozen parameters come from
            # the checkpoint, so a train step takes no inputs. loss_graph makes every output a scalar.
            "inputs": inputs,
            "outputs": [{"name": name, "shape": [], "dtype": "float32"} for name in outputs],
            "loss": contract.LOSS,
        },
        "optimizer": {**optimizer, "iterations": config.iterations, "clip": [0.0, 1.0]},
        "loop": [
            "load the checkpoint; create a training session with the training and optimizer models",
            "repeat iterations times: reset gradients (lazy), train step, optimizer step, "
            "clip the image parameter to [0, 1]",
            "read the image parameter: NCHW float32 RGB in [0, 1]",
        ],
        "loss": {
            "content_layers": spec.content_layers,
            "style_layers": spec.style_layers,
            "content_weight": spec.content_weight,
            "style_weight": spec.style_weight,
            "tv_weight": spec.tv_weight,
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
            "init": config.init.value if isinstance(config.init, InitKind) else Path(config.init).name,
            "seed": config.seed,
        },
        "written_with": _versions(),
    }


def _versions() -> dict[str, str]:
    from importlib import metadata

    import onnxruntime

    try:
        version = metadata.version("nst-ort")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"nst_ort": version, "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__}
