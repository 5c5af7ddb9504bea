"""The stylisation engine: one loaded model, its target sessions and its gradient backend, reused.

Data flows one way: images -> targets -> gradient backend -> loop -> image. `stylize()` in api.py
is one pass through it; sweeps and coarse-to-fine runs make many passes through one engine, so
target sessions and the backend's sessions or artifacts are built once per layer set (and size).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nst_ort import backends, paths
from nst_ort.backends.ort import resolve_device
from nst_ort.config import Device, LossSpec, Optimizer, check_loss
from nst_ort.errors import NstError
from nst_ort.graphs import weight_values
from nst_ort.loop import AdamState, Callback, LoopResult, Objective, run_adam, run_lbfgs
from nst_ort.memory import check_fits
from nst_ort.model import ModelInfo, load_model
from nst_ort.targets import TargetComputer, normalized_loss


@dataclass(frozen=True)
class Targets:
    values: dict[str, np.ndarray]  # graph target name -> P or A
    weights: dict[str, np.ndarray]  # graph weight name -> α, β, γ or w_l, as this pass feeds them
    seconds: float

    @property
    def frozen(self) -> dict[str, np.ndarray]:
        """Every graph input of a pass but the image."""
        return {**self.values, **self.weights}


@dataclass(frozen=True)
class PassInfo:
    """What one optimisation pass cost, for the report."""

    height: int
    width: int
    artifacts_built: bool  # whether the backend built anything for this pass (backends.Prepared)
    artifacts_seconds: float
    targets_seconds: float
    loop_seconds: float


class Scaled:
    """An objective whose loss terms and gradient are `scale` times another's (its `precise`
    twin, where it has one, alike)."""

    def __init__(self, objective, scale: float):
        self.objective, self.scale, self.shape = objective, scale, objective.shape

    def __getattr__(self, name: str):
        if name == "precise":  # built when first asked for (backends/openvino.py)
            return Scaled(self.objective.precise, self.scale)
        raise AttributeError(name)

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        terms, grad = self.objective.value_and_grad(image)
        return {name: value * self.scale for name, value in terms.items()}, grad * np.float32(self.scale)


class Engine:
    def __init__(
        self,
        model_path: Path | None = None,
        device: Device | str = Device.AUTO,
        threads: int = 0,
        cache_root: Path | None = None,
        backend: str = backends.DEFAULT,
    ):
        backends.check_name(backend)  # a wrong name fails before the model loads
        self.model, self.info = load_model(model_path or paths.default_model_path())
        self.device = resolve_device(Device(device).value)
        # The backend that runs (auto resolved for the device): what the report records.
        self.backend = backends.resolve(backend, self.device)
        factory = backends.factory(self.backend)
        self.threads = threads
        self.cache_root = cache_root or paths.artifacts_dir()
        self.gradient = factory(self.model, self.info, self.device, threads, self.cache_root)
        self._target_computers: dict[str, TargetComputer] = {}

    @property
    def model_info(self) -> ModelInfo:
        return self.info

    def check_memory(self, spec: LossSpec, height: int, width: int) -> None:
        """Refuse a size whose estimated host memory exceeds what is available (CPU only)."""
        if self.device == "cpu":
            check_fits(self.info, spec, height, width, backend=self.backend)

    def _targets(self, spec: LossSpec) -> TargetComputer:
        key = spec.layer_key()
        if key not in self._target_computers:
            check_loss(spec, self.info)  # a layer the model lacks would fail deep in onnx
            self._target_computers[key] = TargetComputer(self.model, spec, self.device, self.threads)
        return self._target_computers[key]

    def content_targets(self, spec: LossSpec, content: np.ndarray | None) -> dict[str, np.ndarray]:
        """The content part of a pass's targets: P from `content`, already at the output size."""
        if not spec.content_layers:
            return {}
        if content is None:
            raise NstError("a content loss needs a content image")
        return self._targets(spec).content_targets(content)

    def style_targets(
        self,
        spec: LossSpec,
        styles: list[np.ndarray],
        blend: list[float],
        style_scale: float,
        output_size: tuple[int, int],
        directions: dict[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """The style part: A from the styles, blended, each resized for an output of `output_size`
        (the sliced term's `directions` those of that size unless given)."""
        if not spec.style_layers:
            return {}
        if not styles:
            raise NstError("a style loss needs at least one style image")
        return self._targets(spec).style_targets(styles, blend, output_size, style_scale, directions)

    def weighted(
        self, spec: LossSpec, values: dict[str, np.ndarray], height: int, width: int, seconds: float = 0.0
    ) -> Targets:
        """Targets with the weights that go with them for a height x width image (normalised by
        the targets when `spec.normalize`)."""
        weighted = normalized_loss(spec, values, height, width) if spec.normalize else spec
        return Targets(values, weight_values(weighted), seconds)

    def targets(
        self,
        spec: LossSpec,
        content: np.ndarray | None,
        styles: list[np.ndarray],
        blend: list[float],
        style_scale: float,
        output_size: tuple[int, int],
        style: dict[str, np.ndarray] | None = None,
    ) -> Targets:
        """P from `content` (already at the output size) and A from the styles, blended, and the
        weights that go with them (normalised by the targets when `spec.normalize`). `style`: the
        style targets computed before (style_targets), for the same spec and output size."""
        start = time.perf_counter()
        values = self.content_targets(spec, content)
        values.update(
            self.style_targets(spec, styles, blend, style_scale, output_size) if style is None else style
        )
        return self.weighted(spec, values, *output_size, seconds=time.perf_counter() - start)

    def optimize(
        self,
        spec: LossSpec,
        targets: Targets,
        init: np.ndarray,
        optimizer: Optimizer,
        iterations: int,
        lr: float,
        callback: Callback | None = None,
        start_step: int = 0,
        adam: AdamState | None = None,
        ema_decay: float = 0.0,
        loss_scale: float = 1.0,
        wrap: Callable[[Objective], Objective] | None = None,
    ) -> tuple[LoopResult, PassInfo]:
        """Optimise the image from `init` (NCHW) against the given targets.

        Adam continues from `adam` (an earlier pass's state, resized) and, with `ema_decay`,
        returns the moving average of its iterates (loop.run_adam); L-BFGS uses neither.
        `loss_scale` multiplies the loss terms and the gradient (a tile's share of its image). `wrap`
        turns the backend's objective into the one optimised (a term added on the host: video's
        temporal loss).
        """
        check_loss(spec, self.info)
        _, _, height, width = init.shape
        self.check_memory(spec, height, width)
        prepared = self.gradient.prepare(spec, targets.frozen, height, width)
        objective = prepared.objective if loss_scale == 1.0 else Scaled(prepared.objective, loss_scale)
        objective = objective if wrap is None else wrap(objective)
        start = time.perf_counter()
        if Optimizer(optimizer) is Optimizer.ADAM:
            result = run_adam(objective, init, iterations, lr, callback, start_step, adam, ema_decay)
        else:
            result = run_lbfgs(objective, init, iterations, callback, start_step)
        info = PassInfo(
            height, width, prepared.built, prepared.seconds, targets.seconds, time.perf_counter() - start
        )
        return result, info
