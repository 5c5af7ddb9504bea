"""The loops on objectives with known answers: bounds, non-finite values, scipy's BLAS threads."""

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.config import Status
from nst_ort.imageio import from_nchw
from nst_ort.loop import run_adam, run_lbfgs


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

    # Adam interface
    def set_image(self, image):
        self.image = image.copy()

    def get_image(self):
        return self.image.copy()

    def adam_step(self, lr):
        terms, grad = self.value_and_grad(self.image)
        self.image = self.image - lr * np.sign(grad) if self.calls <= self.after else self.image * np.nan
        return terms

    def clip_image(self):
        np.clip(self.image, 0, 1, out=self.image)


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
