"""The reference driver for a bundle: runs its Adam loop with onnxruntime-training, numpy and Pillow.

This module imports nothing from nst_ort and nothing heavier than those three, so it can be
copied next to an application (or run as `python nst_ort/bundle/driver.py DIR -o OUT.png`) on a machine
without torch, scipy or nst-ort. Drivers in other languages follow the same steps; see
examples/README.md and the `loop` entry of bundle.json:

    load the checkpoint and create a training session with the training and optimizer models;
    repeat `iterations` times: reset gradients, run a train step (outputs the loss terms),
    run an optimizer step, clip the image parameter to [0, 1];
    read the image parameter (NCHW float32 RGB in [0, 1]) and write it out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST = "bundle.json"
FORMAT = "nst-ort-bundle"
VERSION = 1  # bumped when the contract changes incompatibly


class BundleError(Exception):
    """A bundle that is missing, damaged or of another version: one line for the user."""


@dataclass(frozen=True)
class Bundle:
    directory: Path
    manifest: dict

    def path(self, role: str) -> Path:
        return self.directory / self.manifest["files"][role]

    @property
    def image_name(self) -> str:
        return self.manifest["image"]["name"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["image"]["shape"])

    @property
    def iterations(self) -> int:
        return int(self.manifest["optimizer"]["iterations"])

    @property
    def outputs(self) -> list[str]:
        return [o["name"] for o in self.manifest["training_model"]["outputs"]]


def load_bundle(directory: Path) -> Bundle:
    """Read and check bundle.json and the files it names."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such folder")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{directory}: not a bundle (no {MANIFEST}); write one with `nst-ort bundle`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path}: not an nst-ort bundle manifest")
    if manifest.get("version") != VERSION:
        raise BundleError(
            f"{path}: bundle version {manifest.get('version')}, this driver reads version {VERSION}; "
            "make the bundle again with this version"
        )
    bundle = Bundle(directory, manifest)
    try:
        roles = list(manifest["files"])
        _ = bundle.shape, bundle.image_name, bundle.iterations, bundle.outputs
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: damaged manifest ({exc!r})") from None
    for role in roles:
        if not bundle.path(role).is_file():
            raise BundleError(f"{bundle.path(role)}: missing from the bundle")
    return bundle


@dataclass
class RunResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1], the last good iterate
    losses: list[dict[str, float]] = field(default_factory=list)  # per step, before the update
    status: str = "done"  # done | nonfinite | interrupted
    message: str = ""


StepCallback = Callable[[int, dict[str, float]], None]


def training_api():
    """`onnxruntime.training.api`, also where torch is not installed.

    In onnxruntime-training 1.19.2, `onnxruntime/training/__init__.py` imports its fp16
    optimizer, which imports torch, so `from onnxruntime.training import api` fails without
    torch although the training API itself uses none of it. Then the package is registered
    without running its __init__ and `api` is imported from its folder.
    """
    try:
        from onnxruntime.training import api
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
    else:
        return api
    import importlib.util

    package = importlib.util.module_from_spec(importlib.util.find_spec("onnxruntime.training"))
    sys.modules["onnxruntime.training"] = package
    from onnxruntime.training import api

    return api


def _nchw_to_hwc(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, np.float32).reshape(array.shape[-3:]).transpose(1, 2, 0))


def run_bundle(
    directory: Path,
    iterations: int | None = None,
    threads: int = 0,
    callback: StepCallback | None = None,
) -> RunResult:
    """Run the bundle's loop for `iterations` steps (default: the bundle's) and return the image.

    A non-finite loss stops the loop with the last good image and status 'nonfinite'; Ctrl-C
    stops it the same way with status 'interrupted'.
    """
    bundle = load_bundle(directory)
    import onnxruntime as ort

    api = training_api()
    steps = bundle.iterations if iterations is None else iterations
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the gradient builder logs every graph rewrite otherwise
    if threads:
        options.intra_op_num_threads = threads
    state = api.CheckpointState.load_checkpoint(str(bundle.path("checkpoint")))
    module = api.Module(str(bundle.path("training_model")), state, device="cpu", session_options=options)
    # The learning rate is baked into the optimizer model (see bundle.json), so none is set here.
    optimizer = api.Optimizer(str(bundle.path("optimizer_model")), module)
    module.train()
    image = state.parameters[bundle.image_name]
    result = RunResult(_nchw_to_hwc(image.data))
    try:
        for step in range(1, steps + 1):
            module.lazy_reset_grad()  # gradients accumulate across steps otherwise
            outputs = module()
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            values = [float(np.asarray(v.numpy() if hasattr(v, "numpy") else v)) for v in outputs]
            losses = dict(zip(bundle.outputs, values, strict=True))
            bad = [name for name, value in losses.items() if not math.isfinite(value)]
            if bad:
                result.status, result.message = "nonfinite", f"step {step}: {bad[0]} became {losses[bad[0]]}"
                break
            optimizer.step()
            # Projected Adam: pixels stay in [0, 1], as in `nst-ort stylize --optimizer adam`.
            image.data = np.clip(image.data, 0.0, 1.0)
            result.image = _nchw_to_hwc(image.data)
            result.losses.append(losses)
            if callback is not None:
                callback(step, losses)
    except KeyboardInterrupt:
        result.status, result.message = "interrupted", "interrupted"
    return result


def save_png(path: Path, image: np.ndarray) -> None:
    """(height, width, 3) float32 in [0, 1] -> 8-bit RGB PNG, rounded to the nearest level."""
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    Image.fromarray(pixels, mode="RGB").save(path, format="PNG")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an nst-ort bundle and write the image as PNG.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (with bundle.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps [default: the bundle's]")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = one per core")
    args = parser.parse_args(argv)
    try:
        if not args.output.parent.is_dir():
            raise BundleError(f"{args.output.parent}: no such folder")
        result = run_bundle(args.bundle, args.iterations, args.threads)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - a script's own output
        return 2
    save_png(args.output, result.image)
    final = result.losses[-1] if result.losses else {}
    print(f"{result.status}: {args.output}; {len(result.losses)} steps; final {final}")  # noqa: T201
    return 0 if result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
