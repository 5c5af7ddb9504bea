"""What every benchmark evaluates: the default loss on a random-weight VGG, and what it costs.

A `Case` is one (architecture, size, thread count) with the files every backend reads: the
exported model, the artifact cache, and the inputs (start image, targets, weights) in one .npz.
It is plain data, so a subprocess (the peak-memory probe) can rebuild the same evaluation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nst_ort import contract
from nst_ort.config import LossSpec
from nst_ort.contract import Arch, Pooling

# The paper's loss, as the tables below and earlier runs measured it: content relu4_2, style
# relu1_1 … relu5_1 (w = 0.2), α = 1, β = 1e4, γ = 0, sums not normalised. Spelled out, not
# LossSpec's defaults, which the quality work moves (relu2_2, β = 10, TV, normalised terms).
SPEC = LossSpec(content_layers={"relu4_2": 1.0}, style_weight=1e4, tv_weight=0.0, normalize=False)
WEIGHTS_SEED = 0  # export/weights.py::random_weights seed, for the export and for torch
IMAGE = "start"  # the .npz key of the start image (the others are graph names)


def pooling_suffix(pooling: Pooling) -> str:
    """What a case's id and files add for its export's pooling: nothing for the default."""
    return "" if Pooling(pooling) is Pooling.AVG else f"-{Pooling(pooling).value}"


@dataclass(frozen=True)
class Case:
    arch: Arch
    size: int  # a square image, size x size pixels
    threads: int
    model: Path  # the exported ONNX file
    cache: Path  # onnxruntime-training artifact cache root
    inputs: Path  # .npz: start image (NCHW) and every target and weight, by graph name
    pooling: Pooling = Pooling.AVG  # the export's (`nst-ort export --pooling`)

    @property
    def id(self) -> str:
        return f"{Arch(self.arch).value}-{self.size}px{pooling_suffix(self.pooling)}"

    def to_json(self) -> str:
        data = asdict(self)
        data.update(arch=Arch(self.arch).value, model=str(self.model), cache=str(self.cache))
        data["pooling"] = Pooling(self.pooling).value
        data["inputs"] = str(self.inputs)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Case:
        data = json.loads(text)
        return cls(
            Arch(data["arch"]),
            int(data["size"]),
            int(data["threads"]),
            Path(data["model"]),
            Path(data["cache"]),
            Path(data["inputs"]),
            Pooling(data.get("pooling", Pooling.AVG.value)),
        )

    def load_inputs(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(start image, {graph name: value} for every target and weight)."""
        with np.load(self.inputs) as data:
            values = {key: data[key] for key in data.files}
        return values.pop(IMAGE), values


def write_inputs(model_path: Path, size: int, path: Path, seed: int = 0) -> None:
    """Targets from two seeded noise images (content, style), and a third as the start image.

    The targets come from the export's own target graph (nst_ort.targets), so every backend
    optimises towards the very same numbers.
    """
    from nst_ort.graphs import weight_values
    from nst_ort.model import load_model
    from nst_ort.targets import TargetComputer

    model, _ = load_model(model_path)
    rng = np.random.default_rng(seed)
    content, style = rng.random((2, size, size, 3), dtype=np.float32)
    computer = TargetComputer(model, SPEC, "cpu")
    values = {
        **computer.content_targets(content),
        **computer.style_targets([style], [1.0], (size, size), 1.0),
        **weight_values(SPEC),
        IMAGE: rng.random((1, 3, size, size), dtype=np.float32),
    }
    np.savez(path, **values)


# --- analytic cost --------------------------------------------------------------------------------


def multiply_accumulates(arch: Arch, spec: LossSpec, height: int, width: int) -> dict[str, int]:
    """Multiply-accumulates of one value-and-gradient evaluation, counted from the layer shapes.

    Counted: every 3x3 convolution up to the deepest layer in use, forward, and again for its
    input gradient (same shapes, so the same count; conv1_1's too, since the gradient goes to
    the image; no weight gradients: the network is frozen); the Gram products F Fᵀ of the style
    layers (C² M) and their gradient (two C² M products, as both torch and ORT compute it).
    Not counted: ReLU, pooling, the loss terms' elementwise work and the preprocessing, all
    O(C·M) against the convolutions' O(9·C²·M).
    """
    layers = [*spec.content_layers, *spec.style_layers]
    sequence = contract.layer_sequence(arch)
    last = sequence.index(contract.deepest(arch, layers))
    h, w, c = height, width, 3
    conv = 0
    for layer in sequence[: last + 1]:
        if layer.startswith("conv"):
            out = contract.layer_channels(layer)
            conv += h * w * out * c * 9
            c = out
        elif layer.startswith("pool"):
            h, w = h // 2, w // 2
    gram = 0
    for layer in spec.style_layers:
        k = contract.layer_downsampling(layer)
        c = contract.layer_channels(layer)
        gram += c * c * (height // k) * (width // k)
    return {
        "forward_conv": conv,
        "input_grad_conv": conv,
        "gram_forward": gram,
        "gram_backward": 2 * gram,
        "total": 2 * conv + 3 * gram,
    }
