"""The optimisation loop: L-BFGS (scipy) or Adam (numpy), no I/O.

The loop hands a small `StepRecord` and the current image to a callback after every iteration;
whoever called it draws progress bars or saves images. A non-finite loss or gradient stops the
run with the last good image kept; Ctrl-C stops it the same way, marked as interrupted.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image
from scipy.optimize import Bounds, minimize

from nst_ort import contract
from nst_ort.config import Status

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # a declared dependency; without it scipy's BLAS keeps its default threads
    threadpool_limits = None


class Objective(Protocol):
    shape: tuple[int, ...]
    # Optional: `precise`, the same objective evaluated exactly where this one is approximate
    # (bf16); run_lbfgs finishes on it (PRECISE_BELOW).

    def value_and_grad(self, image: np.ndarray) -> tuple[dict[str, float], np.ndarray]: ...


@dataclass(frozen=True)
class StepRecord:
    step: int  # iterations done
    evaluations: int  # forward+backward passes done
    terms: dict[str, float]  # loss, loss.content, loss.style, loss.tv
    elapsed: float  # seconds since the loop started


Callback = Callable[[StepRecord, np.ndarray], None]


@dataclass
class LoopResult:
    image: np.ndarray  # NCHW float32, the last good iterate
    records: list[StepRecord] = field(default_factory=list)
    status: Status = Status.DONE
    message: str = ""
    evaluations: int = 0
    adam: AdamState | None = None  # Adam's state at the end (run_adam), for the next pass


class NonFinite(Exception):
    pass


def _check_finite(terms: dict[str, float], grad: np.ndarray) -> None:
    for name in (*contract.TERMS[1:], contract.LOSS):
        if not math.isfinite(terms.get(name, 0.0)):
            raise NonFinite(f"the {name} term became {terms[name]}")
    if not np.all(np.isfinite(grad)):
        raise NonFinite("the gradient became non-finite")


NONFINITE_HINT = "try a smaller `lr`, smaller `style_weight`, or other weights"


def _single_threaded_blas():
    """L-BFGS-B's update is level-1 BLAS on vectors of one pixel count: one thread does it best.

    scipy's OpenBLAS otherwise wakes a thread per core for every update and leaves them spinning
    afterwards, competing with ONNX Runtime's own threads for the next evaluation. Measured on
    2 shared cores at 128 px: scipy's update 78 -> 6 ms per call, each ORT evaluation 8% faster.
    """
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# Corrections L-BFGS-B keeps (scipy's maxcor; its default and torch's benchmark setting are 10).
# Measured on the HED VGG-16, tubingen + starry_night, from the photo, 300 evaluations: the loss
# after them falls with a longer history (128 px: 2.70e5 with 5, 2.63e5 with 10, 2.54e5 with 20,
# 2.45e5 with 50), while scipy's own work per iteration grows about linearly with it (256x192:
# 14, 25, 45 ms at 10, 20, 50, beside a 330 ms evaluation). benchmarks/README.md, "L-BFGS".
HISTORY = 20
# An objective in bf16 (backends/openvino.py) carries `precise`, the same objective in float32.
# Its loss is within about 1e-3 of float32 and its gradient within 3-5%: L-BFGS-B keeps pace with
# float32 per evaluation while the loss falls by more than about 1% per iteration; below that the
# line search chases rounding, falls behind and finally stops (at 128 px, 13% behind after 200
# evaluations). So the bf16 stage ends once the loss falls by less than PRECISE_BELOW per
# iteration over the last PRECISE_WINDOW iterations (or scipy stops), and the remaining
# iterations run on `precise` from the image reached.
PRECISE_BELOW = 1e-2
PRECISE_WINDOW = 5


class _Switch(Exception):
    """Ends a bf16 stage of run_lbfgs: its loss no longer falls fast enough (PRECISE_BELOW)."""


def _slowed(records: list[StepRecord], since: int) -> bool:
    """The loss fell by less than PRECISE_BELOW per iteration over the stage's last PRECISE_WINDOW."""
    if len(records) - since < PRECISE_WINDOW + 1:
        return False
    first, last = records[-PRECISE_WINDOW - 1].terms[contract.LOSS], records[-1].terms[contract.LOSS]
    return first - last < PRECISE_BELOW * PRECISE_WINDOW * abs(last)


def run_lbfgs(
    objective: Objective,
    x0: np.ndarray,
    iterations: int,
    callback: Callback | None = None,
    start_step: int = 0,
) -> LoopResult:
    """L-BFGS-B with pixel bounds [0, 1], as in the original Gatys implementation.

    The bounds stay: an unbounded L-BFGS (torch's, neural-style's) reaches a lower loss, but of
    pixels outside [0, 1], and the picture clipped at the end is far worse (benchmarks/README.md).
    An objective with a `precise` twin (bf16) runs on it until its loss slows (PRECISE_BELOW), then
    on the twin: a new L-BFGS-B from the image reached, for the iterations left.
    """
    result = LoopResult(image=np.array(x0, np.float32))
    start = time.perf_counter()
    last = {"terms": {}}
    most = math.ceil(iterations * 1.25)  # evaluations, as neural-style caps them
    stages = [objective, *filter(None, [getattr(objective, "precise", None)])]
    outcome = None

    def stage_fun(stage: Objective):
        def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
            image = x.astype(np.float32).reshape(stage.shape)
            terms, grad = stage.value_and_grad(image)
            result.evaluations += 1
            _check_finite(terms, grad)
            last["terms"] = terms
            return terms[contract.LOSS], grad.ravel().astype(np.float64)

        return fun

    def on_iteration(since: int, switch: bool):
        def recorded(intermediate_result) -> None:  # scipy passes x by this parameter name
            image = np.asarray(intermediate_result.x, np.float32).reshape(objective.shape)
            result.image = image
            record = StepRecord(
                start_step + len(result.records) + 1,
                result.evaluations,
                dict(last["terms"]),
                time.perf_counter() - start,
            )
            result.records.append(record)
            if callback is not None:
                callback(record, image)
            if switch and _slowed(result.records, since):
                raise _Switch

        return recorded

    try:
        with _single_threaded_blas():
            for i, stage in enumerate(stages):
                left, since, switch = (
                    iterations - len(result.records),
                    len(result.records),
                    i < len(stages) - 1,
                )
                if left <= 0 or result.evaluations >= most:
                    break
                try:
                    outcome = minimize(
                        stage_fun(stage),
                        result.image.ravel().astype(np.float64),
                        jac=True,
                        method="L-BFGS-B",
                        bounds=Bounds(0.0, 1.0),
                        callback=on_iteration(since, switch),
                        # Run the iterations asked for: stop on the counts, not on scipy's
                        # tolerances, which are meant for losses of order one.
                        options={
                            "maxiter": left,
                            "maxfun": most - result.evaluations + 1,
                            "maxcor": HISTORY,
                            "ftol": 0.0,
                            "gtol": 0.0,
                        },
                    )
                except _Switch:
                    continue
                result.image = np.asarray(outcome.x, np.float32).reshape(objective.shape)
        if outcome is not None and len(result.records) < iterations and result.evaluations < most:
            result.status, result.message = Status.CONVERGED, str(outcome.message)
    except NonFinite as exc:
        result.status, result.message = Status.NONFINITE, f"{exc}; {NONFINITE_HINT}"
    except KeyboardInterrupt:
        result.status, result.message = Status.INTERRUPTED, "interrupted"
    return result


# torch.optim.Adam's update, with style-transfer-pytorch's second-moment decay: 0.99 rather than
# torch's 0.999 lets the step size follow the gradient's scale within ~100 steps, which matters
# when the passes of a coarse-to-fine run change that scale.
ADAM_BETAS = (0.9, 0.99)
ADAM_EPS = 1e-8


@dataclass
class AdamState:
    """Adam's moment estimates and step count, carried from one pass to the next."""

    m: np.ndarray
    v: np.ndarray
    t: int = 0

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> AdamState:
        return cls(np.zeros(shape, np.float32), np.zeros(shape, np.float32))

    def resized(
        self, height: int, width: int, box: tuple[float, float, float, float] | None = None
    ) -> AdamState:
        """The moments at another image size, as style-transfer-pytorch carries them: the first
        bicubic, the second bilinear and kept non-negative. A pass that starts with the previous
        pass's moments takes steps of the size it had reached instead of starting cold, which
        would add noise at the start of every pass. `box` (left, top, right, bottom, in this
        state's pixels): the moments of that region only, as imageio.resize cuts a tile."""
        return AdamState(
            _resize_planes(self.m, height, width, Image.Resampling.BICUBIC, box),
            np.maximum(_resize_planes(self.v, height, width, Image.Resampling.BILINEAR, box), 0.0),
            self.t,
        )


def _resize_planes(array: np.ndarray, height: int, width: int, method, box=None) -> np.ndarray:
    planes = [
        np.asarray(Image.fromarray(plane, mode="F").resize((width, height), method, box=box))
        for plane in np.asarray(array, np.float32).reshape(-1, *array.shape[-2:])
    ]
    return np.stack(planes).reshape(*array.shape[:-2], height, width)


EMA_WINDOW_SHARE = 4  # the moving average spans at most a quarter of a pass's steps


def pass_ema_decay(decay: float, iterations: int) -> float:
    """`decay`, or less where its window, 1/(1 − decay) steps, is longer than a quarter of the
    pass: the average starts at the pass's first iterate, the previous pass's result upsampled,
    and over a short pass (16 steps at 512 px with the defaults) a 100-step window is nearly the
    plain mean of them all, which keeps that blur in the picture."""
    if decay <= 0:
        return decay
    return min(decay, max(0.0, 1 - EMA_WINDOW_SHARE / iterations))


def run_adam(
    objective: Objective,
    x0: np.ndarray,
    iterations: int,
    lr: float,
    callback: Callback | None = None,
    start_step: int = 0,
    state: AdamState | None = None,
    ema_decay: float = 0.0,
    betas: tuple[float, float] = ADAM_BETAS,
) -> LoopResult:
    """Adam on the host (torch.optim.Adam's update), pixels projected onto [0, 1] after each step.

    `state` continues an earlier pass's moments (AdamState.resized to this size); the state
    reached is in the result. With `ema_decay` > 0 the image handed on and returned is the
    exponential moving average of the iterates (bias-corrected, as style-transfer-pytorch does):
    the iterates of Adam with a fixed step size jitter around the optimum, and their average
    does not, which removes fine noise without another loss term. The records' terms are those
    of the iterates the gradient was computed at.
    """
    image = np.array(x0, np.float32)
    result = LoopResult(image=image.copy())
    state = state or AdamState.zeros(image.shape)
    ema_decay = pass_ema_decay(ema_decay, iterations)
    beta1, beta2 = betas
    average, average_weight = np.zeros_like(image), 0.0
    start = time.perf_counter()
    try:
        for i in range(iterations):
            terms, grad = objective.value_and_grad(image)
            result.evaluations += 1
            _check_finite(terms, grad)
            state.t += 1
            # The arithmetic that bundles write out for their drivers (bundle/driver.py, Adam):
            # moments in float32, the step in float64, the image rounded back to float32.
            state.m = np.float32(beta1) * state.m + np.float32(1 - beta1) * grad
            state.v = np.float32(beta2) * state.v + np.float32(1 - beta2) * grad * grad
            denom = np.sqrt(state.v).astype(np.float64) / math.sqrt(1 - beta2**state.t) + ADAM_EPS
            step = (np.float32(lr / (1 - beta1**state.t)) * state.m).astype(np.float64) / denom
            image = np.clip((image.astype(np.float64) - step).astype(np.float32), 0.0, 1.0)
            if ema_decay > 0:
                average = np.float32(ema_decay) * average + np.float32(1 - ema_decay) * image
                average_weight = ema_decay * average_weight + (1 - ema_decay)
                result.image = average / np.float32(average_weight)
            else:
                result.image = image.copy()
            record = StepRecord(start_step + i + 1, result.evaluations, terms, time.perf_counter() - start)
            result.records.append(record)
            if callback is not None:
                callback(record, result.image)
    except NonFinite as exc:
        result.status, result.message = Status.NONFINITE, f"{exc}; {NONFINITE_HINT}"
    except KeyboardInterrupt:
        result.status, result.message = Status.INTERRUPTED, "interrupted"
    result.adam = state
    return result
