"""The loops on objectives with known answers: bounds, non-finite values, scipy's BLAS threads."""

import numpy as np
import pytest

from nst_ort import contract, loop
from nst_ort.config import Status
from nst_ort.imageio import from_nchw
from nst_ort.loop import ADAM_BETAS, ADAM_EPS, AdamState, run_adam, run_lbfgs


class Exploding:
    """A quadratic whose content term becomes NaN after a few evaluations."""

    shape = (1, 3, 4, 4)

    def __init__(self, after):
        self.calls, self.after, self.image = 0, after, np.zeros(self.shape, np.float32)

    def value_and_grad(self, image):
        self.calls += 1
        bad = self.calls > self.after
        value = float("nan") if bad else float(((image - 0.7) ** 2).sum())
        terms = dict(zip(contract.TERMS, (value, value, 0.0, 0.0), strict=True))
        return terms, 2 * (image - 0.7)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_nonfinite_loss_stops_and_keeps_the_last_good_image(optimizer):
    objective = Exploding(after=1)
    start = np.full(Exploding.shape, 0.2, np.float32)
    if optimizer == "lbfgs":
        result = run_lbfgs(objective, start, 20)
    else:
        result = run_adam(objective, start, 20, 0.05)
    assert result.status is Status.NONFINITE
    # The hint names config fields; the command line shows them as options (tests/cli).
    assert "loss.content term became nan" in result.message and "smaller `lr`" in result.message
    assert np.all(np.isfinite(result.image)) and len(result.records) < 20


def test_lbfgs_on_a_quadratic_reaches_the_box_constrained_minimum():
    class Quadratic:
        shape = (1, 1, 2, 3)

        def value_and_grad(self, image):
            d = image - np.array([[[[-1.0, 0.3, 2.0], [0.5, 0.9, 0.1]]]], np.float32)
            return {contract.LOSS: float((d**2).sum())}, 2 * d

    result = run_lbfgs(Quadratic(), np.full((1, 1, 2, 3), 0.5, np.float32), 50)
    desired = np.array([[0.0, 0.3, 1.0], [0.5, 0.9, 0.1]])
    np.testing.assert_allclose(from_nchw(result.image)[..., 0], desired, atol=1e-5)


def blas_threads() -> list[int]:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


class CountingQuadratic:
    """L = Σ (x - 0.3)², recording scipy's BLAS thread counts at every evaluation."""

    shape = (1, 3, 8, 8)

    def __init__(self):
        self.seen: list[list[int]] = []

    def value_and_grad(self, image):
        self.seen.append(blas_threads())
        d = image - np.float32(0.3)
        loss = float((d * d).sum())
        return dict(zip(contract.TERMS, (loss, loss, 0.0, 0.0), strict=True)), 2 * d


def test_blas_is_single_threaded_during_lbfgs_only():
    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library found by threadpoolctl")
    objective = CountingQuadratic()

    result = run_lbfgs(objective, np.zeros(CountingQuadratic.shape, np.float32), iterations=3)

    assert result.evaluations >= 1
    assert all(threads == [1] * len(before) for threads in objective.seen)
    assert blas_threads() == before


class Bowl:
    """L = Σ w (x - c)², a different curvature per pixel, so Adam's steps differ per pixel."""

    shape = (1, 3, 5, 6)

    def __init__(self):
        rng = np.random.default_rng(0)
        self.centre = rng.random(self.shape).astype(np.float32)
        self.weight = rng.uniform(0.1, 10, self.shape).astype(np.float32)

    def value_and_grad(self, image):
        d = image - self.centre
        loss = float((self.weight * d * d).sum())
        return dict(zip(contract.TERMS, (loss, loss, 0.0, 0.0), strict=True)), 2 * self.weight * d


def adam_reference(objective, x, steps, lr, decay):
    """torch.optim.Adam's update with the loop's betas, clipping, and the bias-corrected moving
    average of the iterates, in float64."""
    x = x.astype(np.float64)
    m = v = np.zeros_like(x)
    average, weight = np.zeros_like(x), 0.0
    (b1, b2), eps = ADAM_BETAS, ADAM_EPS
    for t in range(1, steps + 1):
        _, g = objective.value_and_grad(x.astype(np.float32))
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        x = np.clip(x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), 0, 1)
        average, weight = decay * average + (1 - decay) * x, decay * weight + (1 - decay)
    return x, average / weight if decay else x


@pytest.mark.parametrize(("decay", "steps", "applied"), [(0.0, 12, 0.0), (0.9, 40, 0.9), (0.9, 12, 2 / 3)])
def test_adam_returns_the_moving_average_of_its_iterates(decay, steps, applied):
    """With the decay asked for, or for a short pass the one whose window is a quarter of it."""
    objective, start = Bowl(), np.full(Bowl.shape, 0.5, np.float32)
    seen = []
    result = run_adam(
        objective, start, steps, 0.05, callback=lambda r, image: seen.append(image), ema_decay=decay
    )
    _, desired = adam_reference(objective, start, steps, 0.05, applied)
    np.testing.assert_allclose(result.image, desired, atol=1e-5)
    np.testing.assert_allclose(seen[-1], result.image)  # the callback sees what is returned
    assert result.adam.t == steps
    _, other = adam_reference(objective, start, steps, 0.05, 0.95)
    assert np.abs(result.image - other).max() > 1e-4  # the decay matters here


def test_adam_continues_from_a_state():
    """Two runs, the second from the first's state and last iterate, are one run."""
    objective, start = Bowl(), np.full(Bowl.shape, 0.5, np.float32)
    first = run_adam(objective, start, 5, 0.05)
    second = run_adam(objective, first.image, 7, 0.05, state=first.adam)
    whole = run_adam(objective, start, 12, 0.05)
    np.testing.assert_allclose(second.image, whole.image, atol=1e-6)


def test_adam_state_follows_the_image_to_another_size():
    rng = np.random.default_rng(1)
    state = AdamState(
        rng.normal(size=(1, 3, 8, 10)).astype(np.float32), rng.random((1, 3, 8, 10)).astype(np.float32), 7
    )
    actual = state.resized(16, 20)
    assert actual.m.shape == actual.v.shape == (1, 3, 16, 20) and actual.t == 7
    assert actual.v.min() >= 0  # second moments stay non-negative at any size
    # Smooth resampling keeps each channel's mean.
    np.testing.assert_allclose(actual.m.mean(axis=(2, 3)), state.m.mean(axis=(2, 3)), atol=0.1)
    same = state.resized(8, 10)
    np.testing.assert_allclose(same.m, state.m, atol=1e-6)


# --- L-BFGS's history and the bf16 -> float32 switch (loop.HISTORY, PRECISE_BELOW) -----------------


class IllConditioned:
    """L = c + Σ d_i (x_i - t_i)² with d spread over three decades: L-BFGS needs its history here.

    The targets lie partly outside [0, 1], so the bounds are active too. `noise` > 0 makes it a
    stand-in for bf16: loss and gradient off by a relative `noise` (deterministic in x).
    """

    shape = (1, 3, 6, 6)

    def __init__(self, noise: float = 0.0, offset: float = 100.0):
        rng = np.random.default_rng(1)
        self.d = np.logspace(0, 3, int(np.prod(self.shape))).reshape(self.shape)
        self.t = rng.uniform(-0.2, 1.2, self.shape)
        self.noise, self.offset = noise, offset
        self.images: list[np.ndarray] = []

    def value_and_grad(self, image):
        self.images.append(image.copy())
        r = image.astype(np.float64) - self.t
        loss, grad = self.offset + float((self.d * r * r).sum()), 2 * self.d * r
        if self.noise:
            rng = np.random.default_rng(abs(hash(image.tobytes())) % 2**32)
            loss *= 1 + self.noise * 0.02 * rng.standard_normal()
            grad = grad * (1 + self.noise * rng.standard_normal(grad.shape))
        return dict(zip(contract.TERMS, (loss, loss, 0.0, 0.0), strict=True)), grad.astype(np.float32)


def test_lbfgs_keeps_the_history_it_declares():
    """The first iterations match scipy's L-BFGS-B with maxcor=HISTORY, step for step, and not
    the default history of 10 (on this problem the two part after a dozen iterations)."""
    from scipy.optimize import Bounds, minimize

    start = np.full(IllConditioned.shape, 0.5, np.float32)
    iterations = 25
    ours = run_lbfgs(IllConditioned(), start, iterations)

    def reference(history: int) -> np.ndarray:
        problem = IllConditioned()

        def fun(x):
            terms, grad = problem.value_and_grad(x.astype(np.float32).reshape(problem.shape))
            return terms[contract.LOSS], grad.ravel().astype(np.float64)

        options = {"maxiter": iterations, "maxcor": history, "ftol": 0.0, "gtol": 0.0}
        x0 = start.ravel().astype(np.float64)
        outcome = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0, 1), options=options)
        return outcome.x.reshape(problem.shape)

    assert loop.HISTORY != 10
    np.testing.assert_allclose(ours.image, reference(loop.HISTORY), atol=1e-6)
    assert np.max(np.abs(reference(10) - reference(loop.HISTORY))) > 1e-4


def test_a_bf16_objective_hands_over_to_its_precise_twin():
    """Noisy (bf16-like) evaluations until the loss slows, then float32 ones, one record per
    iteration throughout, every pixel in [0, 1], and the float32 minimum at the end."""
    fast, precise = IllConditioned(noise=0.05), IllConditioned()
    fast.precise = precise
    start = np.full(IllConditioned.shape, 0.5, np.float32)

    result = run_lbfgs(fast, start, 150)

    assert result.status is Status.DONE and len(result.records) == 150
    assert [r.step for r in result.records] == list(range(1, 151))
    assert result.evaluations == len(fast.images) + len(precise.images)
    assert len(fast.images) >= loop.PRECISE_WINDOW and len(precise.images) >= 10
    switched = next(i for i, r in enumerate(result.records) if r.evaluations > len(fast.images))
    losses = [r.terms[contract.LOSS] for r in result.records[:switched]]
    assert (
        losses[-1 - loop.PRECISE_WINDOW] - losses[-1] < loop.PRECISE_BELOW * loop.PRECISE_WINDOW * losses[-1]
    )
    assert all(0.0 <= image.min() and image.max() <= 1.0 for image in fast.images + precise.images)
    desired = np.clip(precise.t, 0, 1)
    np.testing.assert_allclose(result.image, desired, atol=1e-3)


def test_an_objective_without_a_twin_runs_one_stage():
    objective = IllConditioned(noise=0.05)
    result = run_lbfgs(objective, np.full(IllConditioned.shape, 0.5, np.float32), 30)
    assert result.evaluations == len(objective.images) and len(result.records) <= 30


def test_adam_state_cut_to_a_region_is_that_region_of_the_whole_resized():
    rng = np.random.default_rng(0)
    state = AdamState(
        rng.normal(size=(1, 3, 30, 40)).astype(np.float32), rng.random((1, 3, 30, 40), np.float32), 5
    )
    whole = state.resized(60, 80)
    full = state.resized(60, 80, box=(0, 0, 40, 30))
    assert np.array_equal(full.m, whole.m) and np.array_equal(full.v, whole.v) and full.t == 5
    part = state.resized(24, 32, box=(10 * 0.5, 12 * 0.5, 42 * 0.5, 36 * 0.5))  # rows 12-35, columns 10-41
    np.testing.assert_allclose(part.m, whole.m[..., 12:36, 10:42], rtol=0, atol=1e-5)
    np.testing.assert_allclose(part.v, whole.v[..., 12:36, 10:42], rtol=0, atol=1e-5)
    assert part.v.min() >= 0
