"""The temporal term: its value and gradient against torch autograd, on its own and on a backend's
objective, and its place in the loop's records."""

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.config import LossSpec, Optimizer
from nst_ort.engine import Engine
from nst_ort.video.temporal import TEMPORAL, TemporalObjective
from tests.requires import needs_torch

H, W = 12, 16
SHAPE = (1, 3, H, W)


class Quadratic:
    """An objective with a known gradient: ½Σx², standing in for a backend's."""

    shape = SHAPE

    def value_and_grad(self, image):
        image = np.asarray(image, np.float32).reshape(SHAPE)
        return {contract.LOSS: 0.5 * float(np.sum(image.astype(np.float64) ** 2))}, image.copy()


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    image, target = (rng.random(SHAPE, dtype=np.float32) for _ in range(2))
    weights = (rng.random((H, W)) > 0.3).astype(np.float32)  # Ruder's c: 0 or 1
    return image, target, weights


def torch_temporal(image, target, weights, weight):
    """λ·Σc(x−w)²/D and its gradient, by torch autograd."""
    import torch

    x = torch.tensor(image, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(weights, dtype=torch.float64)[None, None]
    value = weight * (c * (x - torch.tensor(target, dtype=torch.float64)) ** 2).sum() / x[0].numel()
    value.backward()
    return value.item(), x.grad.numpy()


@needs_torch
@pytest.mark.parametrize("weight", [1.0, 250.0])
def test_value_and_gradient_match_torch(weight):
    image, target, weights = inputs()
    objective = TemporalObjective(Quadratic(), target, weights, weight)
    terms, grad = objective.value_and_grad(image)
    desired_value, desired_grad = torch_temporal(image, target, weights, weight)
    np.testing.assert_allclose(terms[TEMPORAL], desired_value, rtol=1e-6)
    inner_value = 0.5 * float(np.sum(image.astype(np.float64) ** 2))
    np.testing.assert_allclose(terms[contract.LOSS], inner_value + desired_value, rtol=1e-6)
    np.testing.assert_allclose(grad, image + desired_grad, rtol=1e-5, atol=1e-7)
    assert grad.dtype == np.float32 and grad.shape == SHAPE


@needs_torch
def test_on_a_backends_objective_only_the_term_is_added(tiny_model):
    engine = Engine(tiny_model, "cpu", threads=2)
    spec = LossSpec()
    rng = np.random.default_rng(1)
    content, style = (rng.random((48, 64, 3), dtype=np.float32) for _ in range(2))
    image, target = (rng.random((1, 3, 48, 64), dtype=np.float32) for _ in range(2))
    weights = (rng.random((48, 64)) > 0.5).astype(np.float32)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (48, 64))
    inner = engine.gradient.prepare(spec, targets.frozen, 48, 64).objective
    desired_terms, desired_grad = inner.value_and_grad(image)
    actual_terms, actual_grad = TemporalObjective(inner, target, weights, 100.0).value_and_grad(image)
    value, grad = torch_temporal(image, target, weights, 100.0)
    for name in contract.TERMS[1:]:
        assert actual_terms[name] == desired_terms[name]
    np.testing.assert_allclose(actual_terms[TEMPORAL], value, rtol=1e-6)
    np.testing.assert_allclose(actual_terms[contract.LOSS], desired_terms[contract.LOSS] + value, rtol=1e-6)
    np.testing.assert_allclose(actual_grad, desired_grad + grad, rtol=1e-5, atol=1e-6)


def test_the_loop_records_the_term_and_is_pulled_to_the_target(tiny_model):
    engine = Engine(tiny_model, "cpu", threads=2)
    spec = LossSpec()
    rng = np.random.default_rng(2)
    content, style = (rng.random((48, 64, 3), dtype=np.float32) for _ in range(2))
    start, target = (rng.random((1, 3, 48, 64), dtype=np.float32) for _ in range(2))
    weights = np.ones((48, 64), np.float32)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (48, 64))

    def run(weight):
        def wrap(objective):
            return TemporalObjective(objective, target, weights, weight)

        result, _ = engine.optimize(spec, targets, start, Optimizer.ADAM, 5, 0.05, wrap=wrap)
        return result

    pulled, free = run(1e4), run(0.0)
    assert [TEMPORAL in r.terms for r in pulled.records] == [True] * 5
    assert pulled.records[0].terms[TEMPORAL] > pulled.records[-1].terms[TEMPORAL]
    # five steps of 0.05 towards the target, against the style's pull elsewhere without the term
    assert np.abs(pulled.image - target).mean() < np.abs(free.image - target).mean() - 0.05
