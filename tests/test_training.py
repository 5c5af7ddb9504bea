"""onnxruntime-training gradients against torch autograd; artifacts cache; the loops."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from export.exporter import ExportSpec, build_loss_module
from export.losses import content_loss, gram, style_loss, tv_loss
from export.weights import random_weights
from nst_ort import contract
from nst_ort.backends import artifacts
from nst_ort.backends.training import TrainingBackend
from nst_ort.config import LossSpec, Optimizer
from nst_ort.contract import Arch
from nst_ort.engine import Engine
from nst_ort.graphs import weight_values
from nst_ort.imageio import from_nchw
from nst_ort.loop import run_lbfgs

H, W = 48, 64


@pytest.fixture(scope="module")
def engine(tiny_model):
    return Engine(tiny_model, "cpu", threads=2)


@pytest.fixture(scope="module")
def torch_features():
    return build_loss_module(ExportSpec(), random_weights(Arch.VGG16, 0)).features


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(3)]


def torch_loss_and_grad(features, spec: LossSpec, targets: dict, image: np.ndarray):
    x = torch.tensor(image, requires_grad=True)
    feats = features(x, set(spec.content_layers) | set(spec.style_layers))
    content = sum(
        (
            w * content_loss(feats[k], torch.from_numpy(targets[contract.content_target(k)]))
            for k, w in spec.content_layers.items()
        ),
        torch.zeros(()),
    )
    style = sum(
        (
            w * style_loss(gram(feats[k]), torch.from_numpy(targets[contract.style_target(k)]))
            for k, w in spec.style_layers.items()
        ),
        torch.zeros(()),
    )
    total = spec.content_weight * content + spec.style_weight * style + spec.tv_weight * tv_loss(x)
    total.backward()
    return float(total.detach()), x.grad.numpy()


SPECS = {
    "default": LossSpec(content_weight=1.0, style_weight=1e3, tv_weight=0.0),
    "all terms": LossSpec(
        content_layers={"relu2_2": 0.5, "relu4_2": 1.0},
        style_layers={"relu1_1": 0.3, "relu3_1": 0.7},
        style_weight=1e2,
        tv_weight=2.0,
    ),
    "content only": LossSpec(content_layers={"relu3_2": 1.0}, style_layers={}),
    "style only": LossSpec(
        content_layers={}, style_layers={"relu2_1": 1.0, "relu5_1": 1.0}, style_weight=1e3
    ),
    "tv only": LossSpec(content_layers={}, style_layers={}, tv_weight=1.0),
}


@pytest.mark.parametrize("case", list(SPECS))
def test_gradient_matches_torch_autograd(engine, torch_features, case):
    spec = SPECS[case]
    content, style, start = images()
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (H, W))
    entry = artifacts.ensure(engine.model, engine.info.sha256, spec, H, W, engine.cache_root)
    backend = TrainingBackend(entry, {**targets.values, **weight_values(spec)}, "cpu", threads=2)
    image = start.transpose(2, 0, 1)[None].copy()
    terms, actual = backend.value_and_grad(image)
    desired_loss, desired = torch_loss_and_grad(torch_features, spec, targets.values, image)
    assert terms[contract.LOSS] == pytest.approx(desired_loss, rel=1e-4)
    assert np.abs(actual - desired).max() <= 1e-4 * np.abs(desired).max()
    # a second step does not accumulate onto the first gradient
    _, again = backend.value_and_grad(image)
    np.testing.assert_array_equal(again, actual)


def test_artifacts_are_cached_and_rebuilt_when_damaged(engine, tmp_path):
    spec = LossSpec()
    first = artifacts.ensure(engine.model, engine.info.sha256, spec, 32, 40, tmp_path)
    second = artifacts.ensure(engine.model, engine.info.sha256, spec, 32, 40, tmp_path)
    assert first.built and not second.built and second.directory == first.directory
    other = artifacts.ensure(engine.model, engine.info.sha256, spec, 40, 32, tmp_path)
    assert other.built and other.directory != first.directory
    with open(first.training_model, "r+b") as handle:  # a half-written file
        handle.truncate(100)
    third = artifacts.ensure(engine.model, engine.info.sha256, spec, 32, 40, tmp_path)
    assert third.built
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_lbfgs_lowers_the_loss_and_keeps_pixels_in_range(engine):
    spec = SPECS["default"]
    content, style, start = images(1)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (H, W))
    seen = []
    result, info = engine.optimize(
        spec,
        targets,
        start.transpose(2, 0, 1)[None],
        Optimizer.LBFGS,
        15,
        0.0,
        callback=lambda record, image: seen.append(record),
    )
    losses = [r.terms[contract.LOSS] for r in result.records]
    assert result.status == "done" and len(result.records) == 15 == len(seen)
    assert losses[-1] < 0.5 * losses[0]
    assert result.evaluations >= 15 and result.records[-1].evaluations == result.evaluations
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert (info.height, info.width) == (H, W)


def test_adam_lowers_the_loss_and_matches_its_records(engine):
    spec = SPECS["default"]
    content, style, start = images(2)
    targets = engine.targets(spec, content, [style], [1.0], 1.0, (H, W))
    result, _ = engine.optimize(spec, targets, start.transpose(2, 0, 1)[None], Optimizer.ADAM, 30, 0.02)
    losses = [r.terms[contract.LOSS] for r in result.records]
    assert losses[-1] < 0.8 * losses[0]
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


def test_adam_matches_torch_adam(engine):
    # ORT's AdamW with adam_mode=0 and weight decay 0 is torch.optim.Adam (eps 1e-8)
    spec = LossSpec(content_layers={"relu2_2": 1.0}, style_layers={})
    content, _, start = images(3)
    targets = engine.targets(spec, content, [], [], 1.0, (H, W))
    steps, lr = 3, 0.01
    result, _ = engine.optimize(spec, targets, start.transpose(2, 0, 1)[None], Optimizer.ADAM, steps, lr)
    features = build_loss_module(ExportSpec(), random_weights(Arch.VGG16, 0)).features
    x = torch.tensor(start.transpose(2, 0, 1)[None].copy(), requires_grad=True)
    adam = torch.optim.Adam([x], lr=lr, eps=1e-8)
    target = torch.from_numpy(targets.values["content.relu2_2.target"])
    for _ in range(steps):
        adam.zero_grad()
        content_loss(features(x, {"relu2_2"})["relu2_2"], target).backward()
        adam.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    np.testing.assert_allclose(result.image, x.detach().numpy(), atol=1e-5)


def test_same_seed_same_image(tiny_model, make_image):
    from nst_ort import InitKind, StylizeConfig, stylize

    content, style = make_image("c.png", seed=1), make_image("s.png", seed=2)
    config = StylizeConfig(model=tiny_model, size=48, iterations=5, seed=3, init=InitKind.NOISE)
    first = stylize(content, [style], config)
    second = stylize(content, [style], config)
    third = stylize(content, [style], replace(config, seed=4))
    np.testing.assert_array_equal(first.image, second.image)
    assert not np.array_equal(first.image, third.image)
    assert first.image.shape == (38, 48, 3)  # 64x80 content, longest side 48


def test_style_blend_is_the_weighted_mean_of_grams(engine):
    spec = LossSpec(content_layers={}, style_layers={"relu1_1": 1.0})
    _, a, b = images(4)
    both = engine.targets(spec, None, [a, b], [0.25, 0.75], 1.0, (H, W)).values
    only_a = engine.targets(spec, None, [a], [1.0], 1.0, (H, W)).values
    only_b = engine.targets(spec, None, [b], [1.0], 1.0, (H, W)).values
    key = contract.style_target("relu1_1")
    np.testing.assert_allclose(both[key], 0.25 * only_a[key] + 0.75 * only_b[key], rtol=1e-5)


def test_lbfgs_on_a_quadratic_reaches_the_box_constrained_minimum():
    class Quadratic:
        shape = (1, 1, 2, 3)

        def value_and_grad(self, image):
            d = image - np.array([[[[-1.0, 0.3, 2.0], [0.5, 0.9, 0.1]]]], np.float32)
            return {contract.LOSS: float((d**2).sum())}, 2 * d

    result = run_lbfgs(Quadratic(), np.full((1, 1, 2, 3), 0.5, np.float32), 50)
    desired = np.array([[0.0, 0.3, 1.0], [0.5, 0.9, 0.1]])
    np.testing.assert_allclose(from_nchw(result.image)[..., 0], desired, atol=1e-5)
