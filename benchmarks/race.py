"""Optimisers racing to a loss, taking turns one evaluation at a time, each on its own clock.

On a shared machine the load moves while a race runs; racing one optimiser after the other
would give each a different machine. Here every contestant runs in its own thread, but only one
runs at a time: it holds the turn from the moment it resumes until it has made one evaluation,
then hands the turn to the next. Its clock runs only while it holds the turn, so it counts its
evaluations and its optimiser's own work between them, and nothing of the others'.

The loss a contestant is judged by is always the float32 loss of the image it would hand out,
computed by the CPU execution provider off its clock: for an optimiser that keeps the pixels in
[0, 1] and evaluates in float32 that is the loss it computed itself; for an unbounded one (torch)
it is the loss of its iterate clipped to [0, 1], what a saved picture holds; for bf16 it is the
float32 loss at its iterate. The raw loss each optimiser saw is kept beside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nst_ort import contract


class Stop(Exception):
    """Raised inside a contestant's objective to end its run."""


Judge = Callable[[np.ndarray], float]  # image -> float32 loss of the image as handed out


@dataclass
class Contestant:
    name: str
    evaluator: object  # .shape, .value_and_grad(image) -> (terms, gradient)
    optimise: Callable[[object, np.ndarray], None]  # runs until the objective raises Stop
    judge: Judge | None = None  # None: the evaluator's own loss is the judged one
    setup: Callable[[], None] | None = None  # run in the contestant's thread first (thread counts)
    # (own clock seconds, raw loss, judged loss) per evaluation
    log: list[tuple[float, float, float]] = field(default_factory=list)
    error: BaseException | None = None

    def best_by(self, seconds: float, raw: bool = False) -> float | None:
        column = 1 if raw else 2
        return min((entry[column] for entry in self.log if entry[0] <= seconds), default=None)

    def time_to(self, loss: float | None, raw: bool = False) -> float | None:
        """Own clock seconds at the first evaluation whose loss is at most `loss`."""
        if loss is None:
            return None
        column = 1 if raw else 2
        return next((entry[0] for entry in self.log if entry[column] <= loss), None)

    @property
    def seconds(self) -> float:
        return self.log[-1][0] if self.log else 0.0


class Turns:
    """One contestant runs at a time, in a fixed rotation that skips those that are done."""

    def __init__(self, names: list[str]):
        self._cond = threading.Condition()
        self._order = list(names)
        self._active = set(names)
        self._current = names[0]

    def wait(self, name: str) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._current == name)

    def done(self, name: str) -> None:
        with self._cond:
            self._active.discard(name)
            self._advance(name)

    def pass_on(self, name: str) -> None:
        with self._cond:
            self._advance(name)

    def _advance(self, name: str) -> None:
        if not self._active:
            self._current = None
        else:
            i = self._order.index(name)
            rotation = self._order[i + 1 :] + self._order[: i + 1]
            self._current = next(n for n in rotation if n in self._active)
        self._cond.notify_all()


class _Runner:
    """A contestant's objective: evaluates on the clock, judges off it, then passes the turn."""

    def __init__(self, contestant: Contestant, turns: Turns, should_stop: Callable[[Contestant], bool]):
        self.contestant = contestant
        self.shape = contestant.evaluator.shape
        self.turns = turns
        self.should_stop = should_stop
        self.clock = 0.0
        self.resumed = 0.0

    def value_and_grad(self, image: np.ndarray):
        return self._evaluate(self.contestant.evaluator, image)

    @property
    def precise(self):
        """The evaluator's float32 twin (a bf16 objective's, nst_ort.loop.PRECISE_BELOW), on the
        same clock and turns: run_lbfgs finds it here as it would on the evaluator."""
        twin = getattr(self.contestant.evaluator, "precise", None)
        if twin is None:
            raise AttributeError("precise")
        return _Twin(self, twin)

    def _evaluate(self, evaluator, image: np.ndarray):
        c = self.contestant
        if self.should_stop(c):
            raise Stop
        terms, grad = evaluator.value_and_grad(image)
        self.clock += time.perf_counter() - self.resumed
        raw = terms[contract.LOSS]
        judged = raw if c.judge is None else c.judge(image)
        c.log.append((self.clock, raw, judged))
        self.turns.pass_on(c.name)
        self.turns.wait(c.name)
        self.resumed = time.perf_counter()
        return terms, grad

    def run(self, start: np.ndarray) -> None:
        c = self.contestant
        self.turns.wait(c.name)
        try:
            # Off the clock, in this thread: settings and thread pools that are per calling thread
            # (torch's OpenMP), first-run allocations, compilation.
            if c.setup is not None:
                c.setup()
            c.evaluator.value_and_grad(start)
            if getattr(c.evaluator, "precise", None) is not None:
                c.evaluator.precise.value_and_grad(start)
            self.resumed = time.perf_counter()
            c.optimise(self, start.copy())
        except Stop:
            pass
        except BaseException as exc:  # reported by the race, after every thread is done
            c.error = exc
        finally:
            self.turns.done(c.name)


class _Twin:
    def __init__(self, runner: _Runner, evaluator):
        self.runner, self.evaluator, self.shape = runner, evaluator, runner.shape

    def value_and_grad(self, image: np.ndarray):
        return self.runner._evaluate(self.evaluator, image)


def run_race(
    contestants: list[Contestant], start: np.ndarray, should_stop: Callable[[Contestant], bool]
) -> None:
    """Run every contestant from `start`, in turns, until `should_stop` says so for each.

    `should_stop(contestant)` is asked before each of its evaluations; it may look at every
    contestant's log (the others are waiting while it is asked).
    """
    turns = Turns([c.name for c in contestants])
    threads = [
        threading.Thread(target=_Runner(c, turns, should_stop).run, args=(start,), name=c.name)
        for c in contestants
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [c for c in contestants if c.error is not None]
    if failed:
        raise RuntimeError(f"{failed[0].name} failed in the race") from failed[0].error
