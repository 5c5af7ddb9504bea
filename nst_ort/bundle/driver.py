"""The reference driver for a bundle: runs its Adam loop with ONNX Runtime, numpy and Pillow only.

This module imports nothing from nst_ort and nothing heavier than those three, so it can be
copied next to an application (or run as `python nst_ort/bundle/driver.py DIR -o OUT.png`) on a
machine without torch, scipy or nst-ort. It runs both kinds of bundle `nst-ort bundle` writes:

- version 2 (`--backend ort-graph`, the default): model.onnx gives the loss terms and their
  gradient with respect to the image; any ONNX Runtime (the training build too) runs it in an
  InferenceSession, and Adam runs here, on the host:
      bind the other inputs (inputs.bin, bundle.json); image = initial.png / 255
      repeat: terms, gradient = run(image); stop if a term is not finite;
              Adam step (torch.optim.Adam's update); clip the image to [0, 1]
- version 1 (`--backend ort-training`): onnxruntime-training 1.19.2's artifacts; its optimizer
  model runs Adam inside ONNX Runtime.

Drivers in other languages follow the same steps (examples/README.md, bundle.json's `loop`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST = "bundle.json"
FORMAT = "nst-ort-bundle"
TRAINING_VERSION = 1  # onnxruntime-training artifacts (--backend ort-training)
GRAPH_VERSION = 2  # the gradient graph in an InferenceSession (--backend ort-graph)
MODEL_SECTION = {TRAINING_VERSION: "training_model", GRAPH_VERSION: "model"}


class BundleError(Exception):
    """A bundle that is missing, damaged or of another version: one line for the user."""


@dataclass(frozen=True)
class Bundle:
    directory: Path
    manifest: dict

    def path(self, role: str) -> Path:
        return self.directory / self.manifest["files"][role]

    @property
    def version(self) -> int:
        return self.manifest["version"]

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
        """The loss terms a step reports, the total (what is minimised) first."""
        if self.version == TRAINING_VERSION:
            return [o["name"] for o in self.manifest["training_model"]["outputs"]]
        return list(self.manifest["model"]["outputs"]["terms"])


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
    version = manifest.get("version")
    if version not in MODEL_SECTION:
        raise BundleError(
            f"{path}: bundle version {version}, this driver reads versions 1 and 2; "
            "make the bundle again with this version"
        )
    sections = ("files", "image", "optimizer", MODEL_SECTION[version])
    missing = [key for key in sections if not isinstance(manifest.get(key), dict)]
    if missing:
        raise BundleError(f"{path}: damaged manifest (no {missing[0]!r})")
    bundle = Bundle(directory, manifest)
    try:
        _ = bundle.shape, bundle.image_name, bundle.iterations, bundle.outputs
        roles = list(manifest["files"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: damaged manifest ({exc!r})") from None
    for role in roles:
        if not bundle.path(role).is_file():
            raise BundleError(f"{bundle.path(role)}: missing from the bundle")
    if version == GRAPH_VERSION:
        read_inputs(bundle)  # checks inputs.bin against the manifest
    return bundle


def read_inputs(bundle: Bundle) -> dict[str, np.ndarray]:
    """The model's inputs but the image: tensors from inputs.bin (float32, little-endian, C order,
    `length` values at byte `offset`), scalars from bundle.json's `value`."""
    blob_path = bundle.path("inputs")
    blob = blob_path.read_bytes()
    values: dict[str, np.ndarray] = {}
    try:
        for entry in bundle.manifest["model"]["inputs"]:
            name, shape = entry["name"], tuple(int(d) for d in entry["shape"])
            if name == bundle.image_name:
                continue
            if "value" in entry:
                values[name] = np.array(entry["value"], np.float32).reshape(shape)
                continue
            offset, length = int(entry["offset"]), int(entry["length"])
            if length != math.prod(shape) or offset % 4 or offset < 0 or offset + 4 * length > len(blob):
                raise BundleError(f"{blob_path}: damaged (input {name} does not fit)")
            values[name] = np.frombuffer(blob, "<f4", length, offset).astype(np.float32).reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{bundle.directory / MANIFEST}: damaged manifest ({exc!r})") from None
    return values


@dataclass
class RunResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1], the last good iterate
    losses: list[dict[str, float]] = field(default_factory=list)  # per step, before the update
    status: str = "done"  # done | nonfinite | interrupted
    message: str = ""
    milliseconds: list[float] = field(default_factory=list)  # per step: model run and update

    @property
    def nchw(self) -> np.ndarray:  # the image as the contract holds it: [1, 3, H, W] float32
        return np.ascontiguousarray(self.image.transpose(2, 0, 1)[None])


StepCallback = Callable[[int, dict[str, float], float], None]  # step, losses, milliseconds


class Adam:
    """torch.optim.Adam's update (bias-corrected, no weight decay), written out so that other
    drivers can repeat it: m and v in float32, the denominator and the step in float64, the
    image rounded back to float32."""

    def __init__(self, lr: float, betas: list[float], eps: float):
        self.lr, (self.beta1, self.beta2), self.eps = float(lr), map(float, betas), float(eps)
        self.m = self.v = None
        self.t = 0

    def step(self, x: np.ndarray, grad: np.ndarray) -> None:
        """x -= lr·m̂/(√v̂ + eps), in place."""
        beta1, beta2 = self.beta1, self.beta2
        if self.m is None:
            self.m, self.v = np.zeros_like(grad), np.zeros_like(grad)
        self.t += 1
        self.m = np.float32(beta1) * self.m + np.float32(1 - beta1) * grad
        self.v = np.float32(beta2) * self.v + np.float32(1 - beta2) * grad * grad
        denom = np.sqrt(self.v).astype(np.float64) / math.sqrt(1 - beta2**self.t) + self.eps
        update = (np.float32(self.lr / (1 - beta1**self.t)) * self.m).astype(np.float64) / denom
        x[...] = (x.astype(np.float64) - update).astype(np.float32)


def training_api():
    """`onnxruntime.training.api`, also without torch: onnxruntime-training 1.19.2's package
    __init__ imports torch (its fp16 optimizer) although the training API uses none of it, so
    then the package is registered without running its __init__."""
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


def _hwc(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, np.float32).reshape(array.shape[-3:]).transpose(1, 2, 0))


def _session_options(ort, threads: int):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the training build's gradient builder logs every graph rewrite
    if threads:
        options.intra_op_num_threads = threads
    return options


def _graph_stepper(bundle: Bundle, threads: int):
    """Version 2: an InferenceSession with the inputs bound once; Adam on the host."""
    import onnxruntime as ort

    optimizer, outputs = bundle.manifest["optimizer"], bundle.manifest["model"]["outputs"]
    low, high = (float(v) for v in optimizer["clip"])
    session = ort.InferenceSession(
        str(bundle.path("model")), _session_options(ort, threads), providers=["CPUExecutionProvider"]
    )
    binding = session.io_binding()
    inputs = read_inputs(bundle)  # kept referenced: the binding reads their memory
    for name, value in inputs.items():
        binding.bind_cpu_input(name, value)
    for name in (*bundle.outputs, outputs["gradient"]):
        binding.bind_output(name, "cpu")
    with Image.open(bundle.path("initial_image")) as initial:  # 8-bit values v: v / 255
        image = np.ascontiguousarray(
            (np.asarray(initial.convert("RGB")).astype(np.float32) / 255).transpose(2, 0, 1)[None]
        )
    if image.shape != bundle.shape:
        raise BundleError(f"{bundle.path('initial_image')}: not of the image's shape {list(bundle.shape)}")
    adam = Adam(optimizer["learning_rate"], optimizer["betas"], optimizer["eps"])

    last = {}

    def evaluate() -> list[float]:
        binding.bind_cpu_input(bundle.image_name, image)
        session.run_with_iobinding(binding)
        *terms, last["grad"] = binding.copy_outputs_to_cpu()
        return [float(v) for v in terms]

    def update() -> np.ndarray:
        adam.step(image, last["grad"])
        np.clip(image, low, high, out=image)  # projected Adam: pixels stay in range
        return image

    return image, evaluate, update


def _training_stepper(bundle: Bundle, threads: int):
    """Version 1: onnxruntime-training's Module and Optimizer; Adam inside ONNX Runtime."""
    import onnxruntime as ort

    try:
        api = training_api()
    except ImportError:
        raise BundleError(
            f"{bundle.directory}: a version 1 bundle (--backend ort-training) needs onnxruntime-training "
            "1.19.2; write it again with --backend ort-graph to run it on any onnxruntime"
        ) from None
    state = api.CheckpointState.load_checkpoint(str(bundle.path("checkpoint")))
    options = _session_options(ort, threads)
    module = api.Module(str(bundle.path("training_model")), state, device="cpu", session_options=options)
    # The learning rate is baked into the optimizer model (see bundle.json), so none is set here.
    optimizer = api.Optimizer(str(bundle.path("optimizer_model")), module)
    module.train()
    parameter = state.parameters[bundle.image_name]

    def evaluate() -> list[float]:
        module.lazy_reset_grad()  # gradients accumulate across steps otherwise
        outputs = module()
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return [float(np.asarray(v.numpy() if hasattr(v, "numpy") else v)) for v in outputs]

    def update() -> np.ndarray:
        optimizer.step()
        parameter.data = np.clip(parameter.data, 0.0, 1.0)  # as `nst-ort stylize --optimizer adam`
        return parameter.data

    return parameter.data, evaluate, update


def run_bundle(
    directory: Path | Bundle,
    iterations: int | None = None,
    threads: int = 0,
    callback: StepCallback | None = None,
) -> RunResult:
    """Run the bundle's loop for `iterations` steps (default: the bundle's) and return the image.

    A non-finite loss or image stops the loop with the last good image and status 'nonfinite';
    Ctrl-C stops it the same way with status 'interrupted'.
    """
    bundle = directory if isinstance(directory, Bundle) else load_bundle(directory)
    steps = bundle.iterations if iterations is None else iterations
    stepper = _graph_stepper if bundle.version == GRAPH_VERSION else _training_stepper
    image, evaluate, update = stepper(bundle, threads)
    result = RunResult(_hwc(image))
    try:
        for step in range(1, steps + 1):
            start = time.perf_counter()
            losses = dict(zip(bundle.outputs, evaluate(), strict=True))
            bad = next((name for name, value in losses.items() if not math.isfinite(value)), None)
            if bad is None and not np.all(np.isfinite(image := update())):
                bad = "the image"
            if bad is not None:
                value = "non-finite" if bad == "the image" else losses[bad]
                result.status, result.message = "nonfinite", f"step {step}: {bad} became {value}"
                break
            milliseconds = 1000 * (time.perf_counter() - start)
            result.image = _hwc(image)
            result.losses.append(losses)
            result.milliseconds.append(milliseconds)
            if callback is not None:
                callback(step, losses, milliseconds)
    except KeyboardInterrupt:
        result.status, result.message = "interrupted", "interrupted"
    return result


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write a temporary file beside `path`, renamed over it once complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".part", dir=Path(path).parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_png(path: Path, image: np.ndarray) -> None:
    """(height, width, 3) float32 in [0, 1] -> 8-bit RGB PNG, rounded to the nearest level."""
    pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    _write_atomically(path, lambda tmp: Image.fromarray(pixels, mode="RGB").save(tmp, format="PNG"))


def save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:  # np.save would append .npy to a name without it
            np.save(file, np.ascontiguousarray(array, np.float32), allow_pickle=False)

    _write_atomically(path, write)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an nst-ort bundle and write the image as PNG.")
    parser.add_argument("bundle", type=Path, help="the bundle folder (with bundle.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output PNG")
    parser.add_argument("--iterations", type=int, default=None, help="Adam steps [default: the bundle's]")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = ONNX Runtime's default")
    parser.add_argument("--raw", type=Path, default=None, help="also write the image as float32 NCHW .npy")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    def fail(message: str, code: int = 2) -> int:
        print(f"error: {message}", file=sys.stderr)  # noqa: T201 - a script's own output
        return code

    for name, value in (("iterations", args.iterations), ("threads", args.threads)):
        if value is not None and value < 0:
            return fail(f"--{name} {value}: expected a whole number >= 0")
    if args.output.suffix.lower() != ".png" or (args.raw and args.raw.suffix.lower() != ".npy"):
        return fail(f"{args.output}: written as .png (and --raw as .npy)")
    for path in (args.output, args.raw):
        if path is not None and not path.parent.is_dir():
            return fail(f"{path.parent}: no such folder")
    try:
        bundle = load_bundle(args.bundle)
        planned = bundle.iterations if args.iterations is None else args.iterations

        def progress(step: int, losses: dict[str, float], milliseconds: float) -> None:
            loss = next(iter(losses.values()))
            print(f"step {step}/{planned} loss {loss:.4g} ({milliseconds:.0f} ms)", file=sys.stderr)  # noqa: T201

        result = run_bundle(bundle, planned, args.threads, None if args.quiet else progress)
    except BundleError as exc:
        return fail(str(exc))
    try:
        save_png(args.output, result.image)
        if args.raw is not None:
            save_npy(args.raw, result.nchw)
    except OSError as exc:
        return fail(f"{exc.filename or args.output}: cannot write ({exc.strerror})", 1)
    if result.status != "done":
        return fail(f"stopped: {result.message}; last good image saved to {args.output}", 1)
    if not args.quiet:
        steps = len(result.losses)
        final = next(iter(result.losses[-1].values())) if steps else math.nan
        per_step = f"median {np.median(result.milliseconds):.0f} ms a step" if steps else "no steps"
        print(f"done: {args.output}; {steps} steps, {per_step}; loss {final:.4g}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
