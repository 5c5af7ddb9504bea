"""The ort-training backend: its gradient against torch autograd, its Adam against torch's."""

import numpy as np
import pytest

from nst_ort import contract
from nst_ort.backends import artifacts
from nst_ort.backends.training import TrainingBackend
from nst_ort.config import LossSpec
from nst_ort.contract import Arch, ExportSpec
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.graphs import weight_values
from tests.requires import TORCH, needs_training

torch = pytest.importorskip("torch", reason=TORCH)  # the reference, and what export/ is built on

from export.exporter import build_loss_module  # noqa: E402
from export.losses import content_loss, gram, style_loss, tv_loss  # noqa: E402
from export.weights import random_weights  # noqa: E402

pytestmark = needs_training

H, W = 48, 64


@pytest.fixture(scope="module")
def engine(tiny_model):
    return Engine(tiny_model, "cpu", threads=2, backend="ort-training")


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
    total = (
        spec.content_weight * content
        + spec.style_weight * style
        + spec.tv_weight * tv_loss(x, spec.tv_chroma)
    )
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


@needs_training
def test_the_sliced_term_is_refused_in_one_line(tiny_model):
    """onnxruntime-training would differentiate through the histogram lookups the term holds fixed."""
    engine = Engine(tiny_model, "cpu", threads=1, backend="ort-training")
    spec = LossSpec(style_loss="sliced")
    with pytest.raises(NstError, match="^`style_loss` sliced needs `backend` ort-graph or ov-bf16"):
        engine.gradient.prepare(spec, {}, 32, 32)
