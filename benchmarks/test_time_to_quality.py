"""Time to quality: how long nst_ort takes to reach the loss torch.optim.LBFGS reaches in N evaluations.

torch.optim.LBFGS (its default history of 100, strong-Wolfe line search, unbounded: what
neural-style and most torch code run) makes `--ttq-evaluations` evaluations; its best loss by
then is the target. nst_ort's L-BFGS (`nst_ort.loop.run_lbfgs`) runs on the default backend,
ort-graph (float32), and where the `openvino` extra is installed on openvino-bf16 (bf16, then
float32 once the loss slows), until it reaches the target or has used `--ttq-limit` times
torch's time. All start from the same image (seeded noise) towards the same
targets, and take turns one evaluation at a time, each on its own clock (benchmarks/race.py).

The loss is judged in float32 by the CPU execution provider, on the image each would hand out:
torch's iterate clipped to [0, 1] (its pixels are unbounded; a saved picture holds the clipped
one), nst_ort's iterate as it is (L-BFGS-B keeps it in [0, 1]). Torch's own loss of its unclipped
iterate is reported beside, with the time each needs to reach that too.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from benchmarks.backends import BACKENDS, require
from benchmarks.race import Contestant, run_race
from benchmarks.workload import SPEC, multiply_accumulates
from nst_ort import contract
from nst_ort.backends.openvino import Bf16Objective
from nst_ort.contract import Arch
from nst_ort.loop import run_lbfgs, threadpool_limits

ARCH = Arch.VGG16  # the project's default network
REFERENCE = "torch-cpu"
DEFAULT = "ort-graph-cpu"  # the backend `nst-ort stylize` uses by default
CHALLENGERS = (DEFAULT, "openvino-bf16-cpu")
# torch.optim.LBFGS's default, and neural-style's (optim.lbfgs's nCorrection): with it torch gets
# further per evaluation than with 10 (benchmarks/README.md, "L-BFGS"), so it is the harder target.
HISTORY = 100
# A challenger that has not reached the target by then never stops on its own before the
# reference is done: at most this many times the reference's evaluations.
RUNAWAY = 3


class LossJudge:
    """The float32 loss of an image clipped to [0, 1], from the CPU provider's forward pass only."""

    def __init__(self, case):
        from nst_ort.backends.ort import require_ort, session_options
        from nst_ort.graphs import loss_graph
        from nst_ort.model import load_model

        model, _ = load_model(case.model)
        ort = require_ort()
        self.session = ort.InferenceSession(
            loss_graph(model, SPEC).SerializeToString(),
            session_options(case.threads),
            providers=["CPUExecutionProvider"],
        )
        _, values = case.load_inputs()
        names = {i.name for i in self.session.get_inputs()}
        self.feeds = {k: np.array(v, np.float32) for k, v in values.items() if k in names}

    def __call__(self, image: np.ndarray) -> float:
        clipped = np.clip(image, 0.0, 1.0).astype(np.float32)
        (loss,) = self.session.run([contract.LOSS], {**self.feeds, contract.IMAGE: clipped})
        return float(loss)


def torch_threads(threads: int):
    def setup() -> None:
        import torch

        torch.set_num_threads(threads)  # per thread: the race runs each contestant in its own

    return setup


def torch_lbfgs(objective, start: np.ndarray) -> None:
    import torch

    x = torch.from_numpy(start).requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=10**6,
        max_eval=10**7,
        tolerance_grad=0.0,  # run until stopped, as run_lbfgs does (gtol=ftol=0)
        tolerance_change=0.0,
        history_size=HISTORY,
        line_search_fn="strong_wolfe",
    )

    def closure():
        terms, grad = objective.value_and_grad(x.detach().numpy())
        x.grad = torch.from_numpy(grad)
        return torch.tensor(terms[contract.LOSS])

    optimizer.step(closure)


def nst_ort_lbfgs(objective, start: np.ndarray) -> None:
    result = run_lbfgs(objective, start, iterations=10**6)
    raise RuntimeError(f"run_lbfgs ended before the race did: {result.status} {result.message}")


def test_time_to_quality(benchmark, cases, settings):
    case = cases.get(ARCH, settings.ttq_size)
    reference = require(REFERENCE)
    require(DEFAULT)
    judge = LossJudge(case)
    contestants = [
        Contestant(REFERENCE, reference.make(case), torch_lbfgs, judge, setup=torch_threads(settings.threads))
    ]
    skipped = {}
    for name in CHALLENGERS:
        reason = BACKENDS[name].unavailable()
        if reason:
            skipped[name] = reason
            continue
        # float32 in bounds judges itself; bf16 is judged in float32, and finishes in float32 on
        # the default backend, as the openvino-bf16 backend's objectives do (nst_ort.loop)
        evaluator = BACKENDS[name].make(case)
        if name != DEFAULT:
            evaluator = Bf16Objective(evaluator, lambda: BACKENDS[DEFAULT].make(case))
        contestants.append(Contestant(name, evaluator, nst_ort_lbfgs, None if name == DEFAULT else judge))
    image, _ = case.load_inputs()
    initial = judge(image)
    torch_race = contestants[0]
    n = settings.ttq_evaluations

    def should_stop(contestant: Contestant) -> bool:
        if contestant is torch_race:
            return len(contestant.log) >= n
        if len(torch_race.log) < n:
            return len(contestant.log) >= RUNAWAY * n
        target = torch_race.best_by(math.inf)
        return (
            contestant.best_by(math.inf) <= target
            or contestant.seconds >= settings.ttq_limit * torch_race.time_to(target)
            or len(contestant.log) >= RUNAWAY * n
        )

    def race():
        # scipy's BLAS on one thread for the whole race (run_lbfgs does so too, per call: two
        # calls from two threads would restore each other's settings out of order)
        blas = threadpool_limits(limits=1, user_api="blas") if threadpool_limits else contextlib.nullcontext()
        with blas:
            run_race(contestants, image, should_stop)

    benchmark.pedantic(race, rounds=1)

    target = torch_race.best_by(math.inf)
    raw_target = torch_race.best_by(math.inf, raw=True)
    torch_seconds = torch_race.time_to(target)
    torch_raw_seconds = torch_race.time_to(raw_target, raw=True)
    results = {}
    for c in contestants:
        seconds = c.time_to(target)
        raw_seconds = c.time_to(raw_target, raw=c is torch_race)
        results[c.name] = {
            "evaluations": len(c.log),
            "seconds": c.seconds,
            "loss_at_quarters": [c.best_by(torch_race.seconds * q / 4) for q in (1, 2, 3, 4)],
            "raw_loss_at_end": c.best_by(math.inf, raw=True),
            "seconds_to_target": seconds,
            "evaluations_to_target": _evaluations_to(c, seconds),
            "ratio_to_torch": None if seconds is None else seconds / torch_seconds,
            "seconds_to_raw_target": raw_seconds,
            "ratio_to_torch_raw": None if raw_seconds is None else raw_seconds / torch_raw_seconds,
        }
    benchmark.group = f"time to quality {ARCH.value}-{case.size}px"
    benchmark.extra_info.update(
        kind="time-to-quality",
        arch=ARCH.value,
        size=case.size,
        threads=settings.threads,
        macs=multiply_accumulates(ARCH, SPEC, case.size, case.size),
        reference_evaluations=n,
        limit=settings.ttq_limit,
        initial_loss=initial,
        target_loss=target,
        raw_target_loss=raw_target,
        results=results,
        skipped=skipped,
    )

    for c in contestants:
        judged = [entry[2] for entry in c.log]
        assert len(judged) >= 1, c.name
        assert all(math.isfinite(loss) for loss in judged), c.name
        assert min(judged) < initial, c.name
    assert len(torch_race.log) == n


def _evaluations_to(contestant: Contestant, seconds: float | None) -> int | None:
    if seconds is None:
        return None
    return sum(entry[0] <= seconds for entry in contestant.log)
