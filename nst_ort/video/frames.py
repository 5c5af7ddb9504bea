"""One frame at a time: the first from the usual run, each later one from the previous result.

Ruder, Dosovitskiy & Brox (2016): a frame optimised on its own from noise finds another local
optimum than its neighbours, and the clip flickers. A later frame therefore starts from the
previous stylised frame warped by the optical flow (flow.py), the content frame where the flow
finds a disocclusion, and adds the temporal term (temporal.py) that keeps the pixels the flow can
be trusted on close to that warp. Its start is stylised already, so it runs one short pass at the
output size where the first frame runs the whole coarse-to-fine schedule of the config.

Style targets at the output size are computed once (Engine.style_targets) and reused by every
later frame; content targets are the frame's own. With `preserve_colors` the styles are matched
to the first frame of the range once, so that the styles, and with them the targets, stay put.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from nst_ort import colors, contract
from nst_ort.config import PreserveColors, Status
from nst_ort.engine import Engine
from nst_ort.imageio import from_nchw, to_nchw, to_uint8
from nst_ort.loop import Callback, StepRecord
from nst_ort.passes import PassCallback, run_passes
from nst_ort.run import prepare
from nst_ort.video import flow
from nst_ort.video.config import VideoConfig
from nst_ort.video.temporal import TemporalObjective

FULL = "full"  # a frame run with the config's whole schedule, from its `init`
WARPED = "warped"  # a frame run from the previous result, warped, with the temporal term


@dataclass
class FrameResult:
    image: np.ndarray  # (height, width, 3) float32 RGB in [0, 1]: the output frame
    status: Status
    message: str
    record: dict  # what the frame cost and where its loss ended (frame_record)


def frame_record(index: int, kind: str, records: list[StepRecord], evaluations: int, seconds: float) -> dict:
    """A frame's line in the report: its index, how it was run, its steps and its final terms."""
    final = records[-1].terms if records else {}
    return {
        "frame": index,
        "kind": kind,
        "steps": len(records),
        "evaluations": evaluations,
        "seconds": round(seconds, 3),
        **{name: value for name, value in final.items() if name.startswith(contract.LOSS)},
    }


def quantized(image: np.ndarray) -> np.ndarray:
    """The image as its 8-bit PNG holds it: a later frame starts from what a resumed run would
    read back, so that a run resumed after an interrupt goes on as it would have."""
    return to_uint8(image).astype(np.float32) / 255.0


class Stylizer:
    """Stylises the frames of one clip with one engine, for one config and set of styles.

    `reference` is the first frame of the range at the output size (even sides, media.frame_size):
    it fixes the size, validates the run up front and gives the colours `preserve_colors`
    matches the styles to.
    """

    def __init__(self, engine: Engine, config: VideoConfig, styles: list[np.ndarray], reference: np.ndarray):
        height, width = reference.shape[:2]
        self.config = config
        self.engine = engine
        self.size = (height, width)
        # The frames come at the output size: a size of their longest side keeps them so.
        self.stylize = replace(config.stylize, size=max(height, width))
        self.run = prepare(self.stylize, reference, styles, engine)
        self.mode = PreserveColors(self.stylize.preserve_colors)
        _, self.styles = colors.prepare(self.mode, reference, self.run.styles)
        self.style_values: dict[str, np.ndarray] | None = None  # at the output size, computed once

    def network(self, image: np.ndarray) -> np.ndarray:
        """An image as the network sees it: with luminance preservation its luminance, in grey."""
        if self.mode is PreserveColors.LUMINANCE:
            return colors.prepare(self.mode, image, [])[0]
        return image

    def full(
        self,
        index: int,
        content: np.ndarray,
        callback: Callback | None = None,
        on_pass: PassCallback | None = None,
    ) -> FrameResult:
        """A frame run as `stylize` runs an image: the config's passes from its `init`."""
        start = time.perf_counter()
        run = replace(self.run, content=content)
        report = run.report()
        result = run_passes(run, self.network(content), self.styles, report, callback, on_pass)
        image = colors.finish(self.mode, result.image, content)
        records = [
            StepRecord(r["step"], r["evaluations"], _terms(r), r["elapsed"])
            for r in report.data["iterations"]
        ]
        evaluations = sum(p["evaluations"] for p in report.data["passes"])
        record = frame_record(index, FULL, records, evaluations, time.perf_counter() - start)
        return FrameResult(image, result.status, result.message, record)

    def warped(
        self,
        index: int,
        content: np.ndarray,
        previous_content: np.ndarray,
        previous_output: np.ndarray,
        callback: Callback | None = None,
    ) -> FrameResult:
        """A later frame: from `previous_output` (the frame before, stylised) warped by the flow
        between the content frames, with the temporal term against that warp."""
        start = time.perf_counter()
        config, engine, blend = self.stylize, self.engine, self.run.blend
        moved = flow.motion(previous_content, content)
        net_content = self.network(content)
        warped = flow.warp(self.network(previous_output), moved.backward)
        # Ruder's start: the warped result where the flow holds, the content frame where it finds
        # a disocclusion (those pixels have no earlier result to come from).
        trusted = moved.weights[..., None]
        init = trusted * warped + (1 - trusted) * net_content
        if self.style_values is None:
            self.style_values = engine.style_targets(
                config.loss, self.styles, blend, config.style_scale, self.size
            )
        targets = engine.targets(
            config.loss,
            net_content,
            self.styles,
            blend,
            config.style_scale,
            self.size,
            style=self.style_values,
        )
        target, weights, weight = to_nchw(warped), moved.weights, self.config.temporal_weight

        def wrap(objective):
            return TemporalObjective(objective, target, weights, weight)

        result, _ = engine.optimize(
            config.loss,
            targets,
            to_nchw(init),
            config.optimizer,
            self.config.frame_iterations,
            config.lr,
            callback,
            ema_decay=config.ema_decay,
            wrap=wrap,
        )
        image = colors.finish(self.mode, from_nchw(result.image), content)
        record = frame_record(index, WARPED, result.records, result.evaluations, time.perf_counter() - start)
        return FrameResult(image, result.status, result.message, record)


def _terms(row: dict) -> dict[str, float]:
    """The loss terms of a report's iteration row."""
    return {name: value for name, value in row.items() if name.startswith(contract.LOSS)}
