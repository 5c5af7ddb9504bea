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


@pytest.mark.parametrize("k", [0.0, 1.0, 7.0])
def test_tv_counts_colour_differences_k_times(k):
    """Σ ‖grey part of d‖² + k Σ ‖colour part of d‖², in numpy: the grey part of a neighbour
    difference d is its channel mean on every channel, the colour part what is left."""
    rng = np.random.default_rng(3)
    image = rng.random((1, 3, 5, 6)).astype(np.float32)
    desired = 0.0
    for d in (np.diff(image, axis=3), np.diff(image, axis=2)):
        grey = np.broadcast_to(d.mean(axis=1, keepdims=True), d.shape)
        desired += (grey**2).sum() + k * ((d - grey) ** 2).sum()
    actual = tv_loss(torch.from_numpy(image), k).item()
    assert actual == pytest.approx(desired, rel=1e-5)


def test_tv_of_a_grey_image_ignores_the_colour_weight():
    image = torch.rand(1, 1, 6, 7).expand(1, 3, 6, 7)
    actual, desired = tv_loss(image, 50.0).item(), tv_loss(image, 1.0).item()
    assert actual == pytest.approx(desired, rel=1e-6)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 7), (5, 12)])
def test_avg_pool2_matches_torch_pooling(h, w):
    x = torch.rand(1, 3, h, w)
    torch.testing.assert_close(avg_pool2(x), F.avg_pool2d(x, 2), rtol=1e-6, atol=1e-6)


def exact_match(projected: np.ndarray, target_values: np.ndarray) -> np.ndarray:
    """Sliced Wasserstein's pairing (Heitz et al. 2021): each value's rank in its row, sorted,
    onto the target's quantile function at the same level, by numpy's sort and interpolation."""
    m = projected.shape[1]
    levels = (np.argsort(np.argsort(projected, axis=1), axis=1) + 0.5) / m
    grid = (np.arange(target_values.shape[1]) + 0.5) / target_values.shape[1]
    return np.stack(
        [np.interp(level, grid, np.sort(row)) for level, row in zip(levels, target_values, strict=True)]
    )


# Error bounds as shares of the target's range: the mean, and the 99th percentile (the extreme
# tail, where the quantile function is steep, is off by more: a rank error of one value there).
# Measured with 256 bins: 0.12% and 1.1% of the range (stride 1), 0.23% and 1.2% (stride 4).
@pytest.mark.parametrize(("stride", "mean_bound", "p99_bound"), [(1, 0.002, 0.02), (4, 0.004, 0.025)])
def test_histogram_match_is_near_the_exact_pairing(stride, mean_bound, p99_bound):
    from export.losses import histogram_match, quantiles

    rng = np.random.default_rng(2)
    # Skewed rows, as ReLU features projected are: a mass near zero and a long tail.
    projected = rng.gamma(0.7, size=(6, 16384)).astype(np.float32) * rng.random((6, 1)).astype(np.float32)
    target = rng.gamma(2.0, size=(6, 3000)).astype(np.float32) + 1.0
    actual = histogram_match(torch.from_numpy(projected), quantiles(torch.from_numpy(target)), stride).numpy()
    desired = exact_match(projected, target)
    error = np.abs(actual - desired) / (target.max() - target.min())
    assert error.mean() <= mean_bound
    assert np.percentile(error, 99) <= p99_bound


def test_quantiles_are_the_sorted_values_at_the_mid_quantiles():
    from export.losses import quantiles

    values = torch.arange(8.0).flip(0)[None].repeat(2, 1)  # 7 … 0
    actual = quantiles(values, count=4).numpy()
    desired = np.array([[1.0, 3.0, 5.0, 7.0]] * 2)  # positions ⌊(q + ½)·8/4⌋ = 1, 3, 5, 7
    np.testing.assert_array_equal(actual, desired)


def test_sliced_loss_of_a_distribution_against_itself_is_near_zero_and_against_another_is_not():
    from export.losses import histogram_match, projections, quantiles, sliced_loss

    rng = np.random.default_rng(3)
    features = torch.from_numpy(rng.gamma(1.0, size=(1, 16, 40, 50)).astype(np.float32))
    other = features * 1.5 + 0.2
    directions = torch.linalg.qr(torch.from_numpy(rng.standard_normal((16, 16))))[0].T.float()
    p = projections(features, directions)
    same = sliced_loss(p, histogram_match(p, quantiles(p))).item()
    different = sliced_loss(p, histogram_match(p, quantiles(projections(other, directions)))).item()
    size = float((p**2).sum() / p.shape[1])
    assert same <= 1e-3 * size
    # Matched to 1.5x + 0.2 along each direction: the loss is the transport cost, Σ(0.5p + 0.2·Σd)².
    shift = 0.2 * directions.sum(1, keepdim=True)
    desired = float(((0.5 * p + shift) ** 2).sum() / p.shape[1])
    assert different == pytest.approx(desired, rel=0.02)
