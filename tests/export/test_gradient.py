"""export/gradient.py's closed-form gradients against torch autograd."""

import numpy as np
import pytest

from tests.requires import TORCH

torch = pytest.importorskip("torch", reason=TORCH)

from export.gradient import tv_grad  # noqa: E402
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
