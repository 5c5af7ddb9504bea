"""export/gradient.py's closed-form gradients against torch autograd."""

import numpy as np
import pytest

from tests.requires import TORCH

torch = pytest.importorskip("torch", reason=TORCH)

from export.gradient import max_pool2_grad, tv_grad  # noqa: E402
from export.losses import tv_loss  # noqa: E402


@pytest.mark.parametrize("k", [1.0, 0.0, 40.0])
@pytest.mark.parametrize(("h", "w"), [(9, 12), (16, 7)])
def test_tv_grad_matches_autograd(h, w, k):
    rng = np.random.default_rng(h * w)
    image = torch.from_numpy(rng.random((1, 3, h, w)).astype(np.float64)).requires_grad_(True)
    tv_loss(image, k).backward()
    desired = image.grad.numpy()
    actual = tv_grad(image.detach(), k).numpy()
    np.testing.assert_allclose(actual, desired, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "tied"])
@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 7), (17, 16)])
def test_max_pool2_grad_matches_autograd(h, w, ties):
    """Each window's gradient to its first maximum in row-major order, as autograd routes it,
    also where several positions tie (small integers, many of them zero after a ReLU); the row
    and column an odd size drops get none."""
    rng = np.random.default_rng(h * w + ties)
    values = np.maximum(rng.integers(-2, 3, (1, 4, h, w)), 0) if ties else rng.normal(size=(1, 4, h, w))
    before = torch.from_numpy(values.astype(np.float32)).requires_grad_(True)
    pooled = torch.nn.functional.max_pool2d(before, 2, 2)
    grad = torch.from_numpy(rng.normal(size=pooled.shape).astype(np.float32))
    (desired,) = torch.autograd.grad(pooled, before, grad)
    actual = max_pool2_grad(grad, before.detach())
    assert actual.shape == desired.shape
    np.testing.assert_array_equal(actual.numpy(), desired.numpy())
