"""Per-size onnxruntime-training artifacts, built once and cached on disk.

An entry is keyed by the model file's hash, the output size and the layer set: a second run at
the same size builds nothing. Entries are built in a temporary folder and renamed into place,
so a run killed mid-build leaves no half entry, and two runs building the same entry at once
both end with a whole one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from nst_ort import contract
from nst_ort.backends.ort import training_module
from nst_ort.backends.rewrites import conv_grads_as_convs, relu_grads_as_masks
from nst_ort.config import LossSpec
from nst_ort.graphs import training_graph

FILES = ("training_model.onnx", "eval_model.onnx", "optimizer_model.onnx", "checkpoint")
MANIFEST = "manifest.json"
# Bump when the way artifacts are built changes (2: ConvGrad as Conv; 3: ReluGrad as Sign, Mul).
ARTIFACTS_VERSION = 3
ORT_MAX_IR_VERSION = 10  # onnxruntime-training 1.19.2 refuses newer IR versions


@dataclass(frozen=True)
class Artifacts:
    directory: Path
    frozen: tuple[str, ...]  # names of the frozen parameters (targets and weights)
    built: bool  # False on a cache hit
    seconds: float  # build time, or the time to find the entry

    @property
    def training_model(self) -> Path:
        return self.directory / "training_model.onnx"

    @property
    def eval_model(self) -> Path:
        return self.directory / "eval_model.onnx"

    @property
    def optimizer_model(self) -> Path:
        return self.directory / "optimizer_model.onnx"

    @property
    def checkpoint(self) -> Path:
        return self.directory / "checkpoint"


def entry_name(model_sha256: str, spec: LossSpec, height: int, width: int) -> str:
    layers = hashlib.sha256(spec.layer_key().encode()).hexdigest()[:12]
    return f"{model_sha256[:16]}-{height}x{width}-{layers}-v{ARTIFACTS_VERSION}"


def _manifest_ok(directory: Path) -> dict | None:
    """The manifest of a whole entry, or None for a missing, partial or damaged one."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        sizes = manifest["sizes"]
        for name in FILES:
            if (directory / name).stat().st_size != sizes[name]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _quiet_build():
    """Keep the CLI's output clean while generate_artifacts runs.

    It logs at INFO through Python's logging whatever the level, and its C++ gradient builder
    writes every graph rewrite to stderr whatever ONNX Runtime's logger severity. The native
    stderr goes to a temporary file, shown again only if the build fails.
    """
    logging.disable(logging.INFO)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            logging.disable(logging.NOTSET)


def _adam_block():
    onnxblock = training_module("onnxblock")
    # torch.optim.Adam's eps; weight decay 0 (the image is not a network weight).
    return onnxblock.optim.AdamW(bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def _fix_optimizer_model(path: Path) -> None:
    model = onnx.load(str(path))
    # Written with the installed onnx's IR version, which this ORT may not read.
    model.ir_version = min(model.ir_version, ORT_MAX_IR_VERSION)
    for node in model.graph.node:
        if node.op_type == "AdamWOptimizer":
            for attr in node.attribute:
                if attr.name == "adam_mode":
                    # 1 is Hugging Face's AdamW (eps added to √v before bias correction);
                    # 0 is torch.optim.Adam.
                    attr.i = 0
    onnx.save(model, str(path))


def build(model: onnx.ModelProto, spec: LossSpec, height: int, width: int, directory: Path):
    """Write the four artifacts into `directory` (which must exist and be empty)."""
    ort_artifacts = training_module("artifacts")
    train, frozen = training_graph(model, spec, height, width)
    with _quiet_build():
        ort_artifacts.generate_artifacts(
            train,
            requires_grad=[contract.IMAGE],
            frozen_params=frozen,
            loss=None,  # the graph's first output is already the loss
            optimizer=_adam_block(),
            artifact_directory=str(directory),
        )
    for name in ("training_model.onnx", "eval_model.onnx"):
        path = directory / name
        m = onnx.load(str(path))
        changed = False
        if name == "training_model.onnx":
            # Faster forms of the same gradient (see rewrites.py).
            changed = (conv_grads_as_convs(m) + relu_grads_as_masks(m)) > 0
        if m.ir_version > ORT_MAX_IR_VERSION:
            m.ir_version = ORT_MAX_IR_VERSION
            changed = True
        if changed:
            onnx.save(m, str(path))
    _fix_optimizer_model(directory / "optimizer_model.onnx")
    return frozen


def ensure(
    model: onnx.ModelProto,
    model_sha256: str,
    spec: LossSpec,
    height: int,
    width: int,
    root: Path,
) -> Artifacts:
    """The cache entry for this model, layer set and size; built if missing or damaged."""
    start = time.perf_counter()
    directory = root / entry_name(model_sha256, spec, height, width)
    manifest = _manifest_ok(directory)
    if manifest is not None:
        return Artifacts(directory, tuple(manifest["frozen"]), False, time.perf_counter() - start)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=root))
    try:
        frozen = build(model, spec, height, width, tmp)
        sizes = {name: (tmp / name).stat().st_size for name in FILES}
        (tmp / MANIFEST).write_text(
            json.dumps(
                {
                    "frozen": frozen,
                    "sizes": sizes,
                    "height": height,
                    "width": width,
                    "layers": spec.layer_key(),
                    "model_sha256": model_sha256,
                }
            )
        )
        if directory.exists():  # damaged, or another run finished first
            if _manifest_ok(directory) is None:
                shutil.rmtree(directory, ignore_errors=True)
        try:
            os.rename(tmp, directory)
        except OSError:
            # Another run renamed its whole entry into place first: use that one.
            if _manifest_ok(directory) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Artifacts(directory, tuple(frozen), True, time.perf_counter() - start)
