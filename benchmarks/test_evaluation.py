"""One value-and-gradient evaluation of the default loss, per backend, and side by side.

Each timing carries its analytic multiply-accumulate count, the achieved GFLOP/s and the peak
memory of a fresh process doing the same evaluation (see memory.py). After timing, every
backend's loss and gradient are checked against torch autograd at the same image.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from benchmarks import memory
from benchmarks.backends import BACKENDS, REFERENCE, require
from benchmarks.workload import SPEC, multiply_accumulates
from nst_ort import contract

# The float32 backends' bounds (Backend.loss_rtol, gradient_rtol: 1e-4 and 1e-2): measured at
# 256 px against a float64 torch reference, ORT's gradient is within 3e-4 (relative L2), torch's
# own float32 oneDNN path within 1.2e-3, the losses within 1e-5; both fast paths sum in float32
# over up to 65536 positions. These bounds leave room for 512 px. bf16 has its own (backends.py).


def relative_l2(actual: np.ndarray, desired: np.ndarray) -> float:
    return float(np.linalg.norm(actual - desired) / np.linalg.norm(desired))


def describe(benchmark, kind: str, backend_name: str, case, settings) -> dict[str, int]:
    macs = multiply_accumulates(case.arch, SPEC, case.size, case.size)
    benchmark.group = f"{kind} {case.id}"
    benchmark.extra_info.update(
        kind=kind,
        backend=backend_name,
        arch=case.arch.value,
        size=case.size,
        threads=settings.threads,
        macs=macs,
    )
    return macs


def test_value_and_grad(benchmark, backend_name, case, settings, reference):
    backend = require(backend_name)
    macs = describe(benchmark, "evaluation", backend_name, case, settings)
    evaluator = backend.make(case)
    image, _ = case.load_inputs()

    terms, grad = benchmark.pedantic(
        evaluator.value_and_grad, args=(image,), rounds=settings.rounds, warmup_rounds=settings.warmup
    )

    info = benchmark.extra_info
    info["loss"] = terms[contract.LOSS]
    if benchmark.stats is not None:
        info["gflops"] = 2 * macs["total"] / benchmark.stats.stats.median / 1e9
    del evaluator  # the memory probe shares the cores; free this process's buffers first
    info.update(memory.measure(backend_name, case))

    assert math.isfinite(terms[contract.LOSS])
    assert np.all(np.isfinite(grad))
    assert grad.shape == image.shape
    desired = reference(case)
    if desired is None:
        info["checked_against"] = None
        return
    desired_terms, desired_grad = desired
    info["checked_against"] = REFERENCE
    info["gradient_rel_l2"] = relative_l2(grad, desired_grad)
    info["loss_rel_error"] = abs(terms[contract.LOSS] / desired_terms[contract.LOSS] - 1)
    assert terms[contract.LOSS] == pytest.approx(desired_terms[contract.LOSS], rel=backend.loss_rtol)
    assert info["gradient_rel_l2"] <= backend.gradient_rtol


def _interleaved(evaluators: dict, image: np.ndarray, rounds: int) -> dict[str, list[float]]:
    """Seconds per evaluation, backends taking turns; the order rotates every round so no
    backend always runs first after the others (caches, or a neighbour's load)."""
    times: dict[str, list[float]] = {name: [] for name in evaluators}
    order = list(evaluators)
    for i in range(rounds):
        for name in order[i % len(order) :] + order[: i % len(order)]:
            start = time.perf_counter()
            evaluators[name].value_and_grad(image)
            times[name].append(time.perf_counter() - start)
    return times


def test_side_by_side(benchmark, device, case, settings):
    """The ratio bar (ort / torch) measured with the backends interleaved in one run.

    On a shared machine the load moves between separate benchmarks; taking turns within one
    test exposes every backend to the same load, so the ratios stay meaningful.
    """
    reference_name = f"torch-{device}"
    require(reference_name)
    available = [b.name for b in BACKENDS.values() if b.device == device and b.unavailable() is None]
    if len(available) < 2:
        pytest.skip(f"only {', '.join(available)} available on {device}")
    macs = describe(benchmark, "side-by-side", device, case, settings)
    evaluators = {name: BACKENDS[name].make(case) for name in available}
    image, _ = case.load_inputs()
    for evaluator in evaluators.values():
        evaluator.value_and_grad(image)  # first-run allocations are not what we compare

    times = benchmark.pedantic(_interleaved, args=(evaluators, image, max(settings.rounds, 1)), rounds=1)

    medians = {name: float(np.median(t)) for name, t in times.items()}
    info = benchmark.extra_info
    info.update(
        device=device,
        backends=available,
        rounds=len(times[reference_name]),
        median_ms={name: 1e3 * m for name, m in medians.items()},
        ratio_to_torch={name: m / medians[reference_name] for name, m in medians.items()},
        gflops={name: 2 * macs["total"] / m / 1e9 for name, m in medians.items()},
    )
    assert all(m > 0 for m in medians.values())


def test_max_pooling_side_by_side(benchmark, device, cases, arch, size, settings):
    """What an export with `--pooling max` costs each backend against the average-pooled one.

    Max pooling's backward pass is in the export's gradient graph (export/gradient.py), so every
    backend that runs that graph pays for it in its own way; both exports' evaluations, every
    backend's, take turns in one run, so the ratios share one load.
    """
    available = [b.name for b in BACKENDS.values() if b.device == device and b.unavailable() is None]
    if not available:
        pytest.skip(f"no backend available on {device}")
    pooled = {pooling: cases.get(arch, size, pooling) for pooling in contract.Pooling}
    describe(benchmark, "max-pooling", device, pooled[contract.Pooling.MAX], settings)
    evaluators = {
        (name, pooling): BACKENDS[name].make(case) for name in available for pooling, case in pooled.items()
    }
    image, _ = pooled[contract.Pooling.AVG].load_inputs()
    for evaluator in evaluators.values():
        evaluator.value_and_grad(image)  # first-run allocations are not what we compare

    times = benchmark.pedantic(_interleaved, args=(evaluators, image, max(settings.rounds, 1)), rounds=1)

    medians = {key: float(np.median(t)) for key, t in times.items()}
    avg, max_ = contract.Pooling.AVG, contract.Pooling.MAX
    benchmark.extra_info.update(
        device=device,
        backends=available,
        median_ms={f"{name}-{pooling.value}": 1e3 * m for (name, pooling), m in medians.items()},
        max_over_avg={name: medians[name, max_] / medians[name, avg] for name in available},
    )
    assert all(m > 0 for m in medians.values())
