"""The paper's formulas, checked against numpy and closed forms."""

import numpy as np
import pytest

from tests.requires import TORCH

torch = pytest.importorskip("torch", reason=TORCH)
F = torch.nn.functional

from export.losses import content_loss, gram, style_loss, tv_loss  # noqa: E402
from export.network import avg_pool2  # noqa: E402


def test_gram_of_ones_is_ones_per_position():
    features = torch.ones(1, 4, 3, 5)
    actual = gram(features).numpy()
    desired = np.ones((4, 4))  # F Fᵀ = M everywhere, divided by M
    np.testing.assert_allclose(actual, desired, rtol=1e-6)


def test_style_loss_equals_the_papers_formula():
    rng = np.random.default_rng(0)
    f = rng.random((1, 8, 6, 7)).astype(np.float32)
    a_features = rng.random((8, 42)).astype(np.float32)
    n, m = 8, 42
    g_paper = f.reshape(n, m) @ f.reshape(n, m).T
    a_paper = a_features @ a_features.T
    desired = ((g_paper - a_paper) ** 2).sum() / (4 * n**2 * m**2)
    actual = style_loss(gram(torch.from_numpy(f)), torch.from_numpy(a_paper / m)).item()
    assert actual == pytest.approx(desired, rel=1e-5)


def test_content_loss_is_half_the_squared_error():
    rng = np.random.default_rng(1)
    f, p = rng.random((2, 1, 3, 4, 5)).astype(np.float32)
    desired = 0.5 * ((f - p) ** 2).sum()
    actual = content_loss(torch.from_numpy(f), torch.from_numpy(p)).item()
    assert actual == pytest.approx(desired, rel=1e-6)


def test_tv_of_a_checkerboard():
    c, h, w = 3, 6, 8
    board = (np.indices((h, w)).sum(axis=0) % 2).astype(np.float32)
    image = torch.from_numpy(np.broadcast_to(board, (1, c, h, w)).copy())
    desired = c * h * (w - 1) + c * (h - 1) * w  # every neighbour pair differs by 1
    assert tv_loss(image).item() == pytest.approx(desired)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 7), (5, 12)])
def test_avg_pool2_matches_torch_pooling(h, w):
    x = torch.rand(1, 3, h, w)
    torch.testing.assert_close(avg_pool2(x), F.avg_pool2d(x, 2), rtol=1e-6, atol=1e-6)
