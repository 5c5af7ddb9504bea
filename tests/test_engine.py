"""The engine: targets (blended Grams), and optimisation passes through either backend."""

import numpy as np
import pytest

from nst_ort import backends, contract
from nst_ort.config import LossSpec, Optimizer
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.loop import ADAM_BETAS
from tests.requires import needs_torch, skip_without_training

H, W = 48, 64
SPEC = LossSpec(content_weight=1.0, style_weight=1e3, tv_weight=0.0)


# The float32 backends, which these tests hold to torch's numbers; the bf16 ones have their own:
# tests/backends/test_openvino.py and test_openvino_runtime.py.
FLOAT32 = [name for name in backends.BACKENDS if not name.endswith("-bf16")]


@pytest.fixture(scope="module", params=FLOAT32)
def engine(request, tiny_model):
    if request.param == "ort-training":
        skip_without_training()
    return Engine(tiny_model, "cpu", threads=2, backend=request.param)


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(3)]


def test_lbfgs_lowers_the_loss_and_keeps_pixels_in_range(engine):
    content, style, start = images(1)
    targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (H, W))
    seen = []
    result, info = engine.optimize(
        SPEC,
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
    content, style, start = images(2)
    targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (H, W))
    result, _ = engine.optimize(SPEC, targets, start.transpose(2, 0, 1)[None], Optimizer.ADAM, 30, 0.02)
    losses = [r.terms[contract.LOSS] for r in result.records]
    assert losses[-1] < 0.8 * losses[0]
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


@needs_torch
def test_adam_matches_torch_adam(engine):
    """The loop's Adam, on either backend's gradient, is torch.optim.Adam with the loop's betas
    (eps 1e-8), pixels clipped to [0, 1] after each step."""
    import torch

    from export.exporter import build_loss_module
    from export.losses import content_loss
    from export.weights import random_weights
    from nst_ort.contract import Arch, ExportSpec

    # The paper's plain sum, as torch computes it below (normalising would only rescale it).
    spec = LossSpec(content_layers={"relu2_2": 1.0}, style_layers={}, tv_weight=0.0, normalize=False)
    content, _, start = images(3)
    targets = engine.targets(spec, content, [], [], 1.0, (H, W))
    steps, lr = 3, 0.01
    result, _ = engine.optimize(spec, targets, start.transpose(2, 0, 1)[None], Optimizer.ADAM, steps, lr)
    features = build_loss_module(ExportSpec(), random_weights(Arch.VGG16, 0)).features
    x = torch.tensor(start.transpose(2, 0, 1)[None].copy(), requires_grad=True)
    adam = torch.optim.Adam([x], lr=lr, betas=ADAM_BETAS, eps=1e-8)
    target = torch.from_numpy(targets.values["content.relu2_2.target"])
    for _ in range(steps):
        adam.zero_grad()
        content_loss(features(x, {"relu2_2"})["relu2_2"], target).backward()
        adam.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    np.testing.assert_allclose(result.image, x.detach().numpy(), atol=1e-5)


def test_style_blend_is_the_weighted_mean_of_grams(engine):
    spec = LossSpec(content_layers={}, style_layers={"relu1_1": 1.0})
    _, a, b = images(4)
    both = engine.targets(spec, None, [a, b], [0.25, 0.75], 1.0, (H, W)).values
    only_a = engine.targets(spec, None, [a], [1.0], 1.0, (H, W)).values
    only_b = engine.targets(spec, None, [b], [1.0], 1.0, (H, W)).values
    key = contract.style_target("relu1_1")
    np.testing.assert_allclose(both[key], 0.25 * only_a[key] + 0.75 * only_b[key], rtol=1e-5)


def test_a_layer_the_model_lacks_says_what_to_do(engine):
    spec = LossSpec(content_layers={}, style_layers={"relu5_4": 1.0})
    with pytest.raises(NstError, match="has no style layer relu5_4; it has relu1_1, relu1_2") as error:
        engine.targets(spec, None, [images()[0]], [1.0], 1.0, (H, W))
    assert "`nst-ort export` exports every layer of its network" in str(error.value)


def test_targets_are_their_content_and_style_parts_weighted(engine):
    content, style, _ = images(3)
    desired = engine.targets(SPEC, content, [style], [1.0], 1.0, (H, W))
    values = {
        **engine.content_targets(SPEC, content),
        **engine.style_targets(SPEC, [style], [1.0], 1.0, (H, W)),
    }
    assert set(engine.content_targets(SPEC, content)) == {
        contract.content_target(k) for k in SPEC.content_layers
    }
    actual = engine.weighted(SPEC, values, H, W)
    assert actual.values.keys() == desired.values.keys() and actual.weights.keys() == desired.weights.keys()
    assert all(np.array_equal(actual.frozen[k], desired.frozen[k]) for k in desired.frozen)


def test_a_loss_scale_scales_the_terms_and_the_gradient(engine):
    content, style, start = images(4)
    targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (H, W))
    nchw = start.transpose(2, 0, 1)[None]
    whole, _ = engine.optimize(SPEC, targets, nchw, Optimizer.ADAM, 1, 0.02)
    scaled, _ = engine.optimize(SPEC, targets, nchw, Optimizer.ADAM, 1, 0.02, loss_scale=0.25)
    actual, desired = scaled.records[0].terms, whole.records[0].terms  # both at the start image
    np.testing.assert_allclose(scaled.adam.m, 0.25 * whole.adam.m, rtol=1e-5, atol=1e-12)
    assert actual == pytest.approx({name: 0.25 * value for name, value in desired.items()}, rel=1e-6)


def test_a_scaled_objective_keeps_its_precise_twin_lazy():
    from nst_ort.engine import Scaled

    class Objective:
        shape = (1, 3, 2, 2)
        built = 0

        def value_and_grad(self, image):
            return {contract.LOSS: 2.0}, np.ones(self.shape, np.float32)

        @property
        def precise(self):
            Objective.built += 1
            return Objective()

    scaled = Scaled(Objective(), 0.5)
    assert Objective.built == 0  # asked for only when used (backends/openvino.py builds it then)
    terms, grad = scaled.precise.value_and_grad(np.zeros(Objective.shape, np.float32))
    assert Objective.built == 1 and terms == {contract.LOSS: 1.0} and np.all(grad == 0.5)

    assert getattr(Scaled(object.__new__(type("NoTwin", (), {"shape": (1,)})), 2.0), "precise", None) is None
