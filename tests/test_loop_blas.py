"""run_lbfgs keeps scipy's BLAS on one thread while it runs, and gives the threads back after."""

from __future__ import annotations

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.loop import run_lbfgs

threadpoolctl = pytest.importorskip("threadpoolctl")


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]


class Quadratic:
    """L = Σ (x - 0.3)², recording scipy's BLAS thread counts at every evaluation."""

    shape = (1, 3, 8, 8)

    def __init__(self):
        self.seen: list[list[int]] = []

    def value_and_grad(self, image):
        self.seen.append(blas_threads())
        d = image - np.float32(0.3)
        loss = float((d * d).sum())
        terms = {
            contract.LOSS: loss,
            contract.LOSS_CONTENT: loss,
            contract.LOSS_STYLE: 0.0,
            contract.LOSS_TV: 0.0,
        }
        return terms, 2 * d


def test_blas_is_single_threaded_during_lbfgs_only():
    before = blas_threads()
    if not before:
        pytest.skip("no BLAS library found by threadpoolctl")
    objective = Quadratic()

    result = run_lbfgs(objective, np.zeros(Quadratic.shape, np.float32), iterations=3)

    assert result.evaluations >= 1
    assert all(threads == [1] * len(before) for threads in objective.seen)
    assert blas_threads() == before
