"""Whole optimisation steps through nst_ort's own loop, and the loop's overhead around ORT.

The ORT calls inside `TrainingBackend` are timed in place (a thin clock around its Module and
Optimizer), so each round splits into: ORT's forward+backward (the evaluation), ORT's Adam
kernel (Adam only), and everything else: copying the image in and the gradient out, float64
conversions, scipy's L-BFGS-B update, clipping. The bar: everything outside the evaluation is
at most 5% of a step at 256 px, in the steady state; what a call costs once (scipy's set-up)
is reported beside it.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from benchmarks.backends import require
from benchmarks.workload import SPEC, multiply_accumulates
from nst_ort import contract
from nst_ort.config import StylizeConfig
from nst_ort.contract import Arch
from nst_ort.loop import run_adam, run_lbfgs, threadpool_limits

ARCH = Arch.VGG16  # the project's default network
OVERHEAD_BAR = 0.05


class Clocked:
    """Stands in for an ORT Module: its calls (forward + backward) are timed, the rest passed through."""

    def __init__(self, target):
        self._target = target
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self._target(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self._target, name)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimisation_step(benchmark, optimizer, size, cases, settings):
    case = cases.get(ARCH, size)
    backend = require("ort-cpu").make(case)
    image, _ = case.load_inputs()
    steps = settings.loop_steps
    lr = StylizeConfig().lr

    def run(iterations: int, callback=None):
        if optimizer == "lbfgs":
            return run_lbfgs(backend, image, iterations, callback)
        return run_adam(backend, image, iterations, lr, callback)

    run(1)  # warm-up
    # Private attributes on purpose: the split needs the ORT calls themselves, and a rename in
    # training.py fails here loudly rather than measuring the wrong thing. Adam's update runs on
    # the host (nst_ort.loop.run_adam) for every backend, so it counts as loop overhead.
    backend._module = module = Clocked(backend._module)
    rounds: list[dict[str, float]] = []

    def timed_round():
        module.seconds = 0.0
        marks: list[tuple[float, float, int]] = []  # (time, ORT evaluation seconds, evaluations)

        def mark(record, _image):
            marks.append((time.perf_counter(), module.seconds, record.evaluations))

        start = time.perf_counter()
        result = run(steps, mark)
        total = time.perf_counter() - start
        # Steady state: from the end of the first step to the end of the last. Before the
        # first step is what a call costs once (scipy converts the [0, 1] bounds pixel by pixel
        # in Python), which the steady state leaves out and `per_call` keeps.
        (t0, e0, n0), (t1, e1, n1) = marks[0], marks[-1]
        rounds.append(
            {
                "steps": len(marks) - 1,
                "wall": t1 - t0,
                "evaluation": e1 - e0,
                "evaluations": n1 - n0,
                "per_call": (total - module.seconds) - ((t1 - t0) - (e1 - e0)),
                "total": total,
                "records": len(result.records),
            }
        )
        return result

    result = benchmark.pedantic(timed_round, rounds=settings.loop_rounds)

    steady = [r for r in rounds if r["steps"] > 0]
    assert steady, "every round stopped after its first step"
    shares = [1 - r["evaluation"] / r["wall"] for r in steady]
    macs = multiply_accumulates(ARCH, SPEC, size, size)
    benchmark.group = f"loop {ARCH.value}-{size}px"
    benchmark.extra_info.update(
        kind="loop",
        backend="ort-cpu",
        optimizer=optimizer,
        arch=ARCH.value,
        size=size,
        threads=settings.threads,
        macs=macs,
        steps=rounds[-1]["records"],
        evaluations_per_step=float(np.median([r["evaluations"] / r["steps"] for r in steady])),
        step_ms=1e3 * float(np.median([r["wall"] / r["steps"] for r in steady])),
        evaluation_ms=1e3 * float(np.median([r["evaluation"] / r["evaluations"] for r in steady])),
        overhead_fraction=float(np.median(shares)),
        overhead_bar=OVERHEAD_BAR,
        per_call_ms=1e3 * float(np.median([r["per_call"] for r in rounds])),
        blas_single_threaded=threadpool_limits is not None,
    )

    # L-BFGS-B may spend its evaluation cap (1.25 per iteration) in line searches first.
    assert result.status in ("done", "converged"), result.message
    assert 1 <= len(result.records) <= steps
    first, final = result.records[0].terms[contract.LOSS], result.records[-1].terms[contract.LOSS]
    assert math.isfinite(final) and final <= first
    assert all(0 <= s < 1 for s in shares)
