"""Time to quality: nst_ort's L-BFGS on ORT against torch.optim.LBFGS, same objective, same start.

Each optimiser gets the same wall-clock budget, from the same start image (seeded noise) and
the same targets. Every evaluation's loss is logged with its time since the start; "the loss
at time t" is the lowest loss evaluated by then. Reported: the loss each reached within the
budget, and the time each took to reach the worse of the two final losses (a loss both reach).

The two are the usual choice on each side, not the same algorithm: nst_ort runs scipy's
L-BFGS-B (history 10, Moré-Thuente line search, pixels bounded to [0, 1]); torch.optim.LBFGS
has no bounds, and runs here with history 10 and its strong-Wolfe line search.
"""

from __future__ import annotations

import math
import time

import numpy as np

from benchmarks.backends import require
from benchmarks.workload import SPEC, multiply_accumulates
from nst_ort import contract
from nst_ort.contract import Arch
from nst_ort.loop import run_lbfgs

ARCH = Arch.VGG16  # the project's default network
ORT = "ort-graph-cpu"  # the backend `nst-ort stylize` uses by default
HISTORY = 10  # scipy's L-BFGS-B default (maxcor), which run_lbfgs keeps


class BudgetSpent(Exception):
    pass


class Race:
    """Wraps an evaluator: logs (seconds since start, loss) per evaluation, stops at the budget.

    It stops only once `at_least` evaluations are logged, so the sanity checks have something to
    check on an overloaded machine; evaluations past the budget never count towards its results.
    """

    def __init__(self, evaluator, budget: float, at_least: int = 3):
        self.evaluator = evaluator
        self.shape = evaluator.shape
        self.budget = budget
        self.at_least = at_least
        self.log: list[tuple[float, float]] = []
        self.start = time.perf_counter()

    def value_and_grad(self, image: np.ndarray):
        if time.perf_counter() - self.start >= self.budget and len(self.log) >= self.at_least:
            raise BudgetSpent
        terms, grad = self.evaluator.value_and_grad(image)
        self.log.append((time.perf_counter() - self.start, terms[contract.LOSS]))
        return terms, grad

    def best_by(self, seconds: float) -> float:
        """The lowest loss evaluated within `seconds` (None when no evaluation finished by then)."""
        return min((loss for t, loss in self.log if t <= seconds), default=None)

    def time_to(self, loss: float | None) -> float | None:
        if loss is None:
            return None
        return next((t for t, value in self.log if value <= loss), None)


def race_nst_ort(evaluator, image: np.ndarray, budget: float) -> Race:
    race = Race(evaluator, budget)
    try:
        run_lbfgs(race, image, iterations=10**6)
    except BudgetSpent:
        pass
    return race


def race_torch(evaluator, image: np.ndarray, budget: float) -> Race:
    import torch

    x = torch.from_numpy(image.copy()).requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=10**6,
        max_eval=10**7,
        tolerance_grad=0.0,  # run to the budget, as run_lbfgs does (gtol=ftol=0)
        tolerance_change=0.0,
        history_size=HISTORY,
        line_search_fn="strong_wolfe",
    )
    race = Race(evaluator, budget)

    def closure():
        terms, grad = race.value_and_grad(x.detach().numpy())
        x.grad = torch.from_numpy(grad)
        return torch.tensor(terms[contract.LOSS])

    try:
        optimizer.step(closure)
    except BudgetSpent:
        pass
    return race


def test_time_to_quality(benchmark, cases, settings):
    ort_evaluator = require(ORT).make(cases.get(ARCH, settings.ttq_size))
    torch_evaluator = require("torch-cpu").make(cases.get(ARCH, settings.ttq_size))
    case = cases.get(ARCH, settings.ttq_size)
    image, _ = case.load_inputs()
    budget = settings.ttq_seconds
    initial = ort_evaluator.value_and_grad(image)[0][contract.LOSS]  # also the warm-up
    torch_evaluator.value_and_grad(image)

    def both():
        return race_nst_ort(ort_evaluator, image, budget), race_torch(torch_evaluator, image, budget)

    ort_race, torch_race = benchmark.pedantic(both, rounds=1)

    races = {ORT: ort_race, "torch-cpu": torch_race}
    finals = {name: race.best_by(budget) for name, race in races.items()}
    target = None if None in finals.values() else max(finals.values())
    benchmark.group = f"time to quality {ARCH.value}-{case.size}px"
    benchmark.extra_info.update(
        kind="time-to-quality",
        arch=ARCH.value,
        size=case.size,
        threads=settings.threads,
        macs=multiply_accumulates(ARCH, SPEC, case.size, case.size),
        budget_s=budget,
        initial_loss=initial,
        target_loss=target,
        results={
            name: {
                "loss_at_budget": finals[name],
                "evaluations": sum(t <= budget for t, _ in race.log),
                "seconds_to_target": race.time_to(target),
                "loss_at_quarters": [race.best_by(budget * q / 4) for q in (1, 2, 3, 4)],
            }
            for name, race in races.items()
        },
    )

    for name, race in races.items():
        losses = [loss for _, loss in race.log]
        assert len(losses) >= race.at_least, name
        assert all(math.isfinite(loss) for loss in losses), name
        assert min(losses) < initial, name
