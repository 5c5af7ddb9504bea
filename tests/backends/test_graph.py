"""The ort-graph backend: the export's gradient graph against torch autograd and ort-training.

The parity tests need torch (to export and for autograd) and onnxruntime-training; they skip
without them. The rest needs only onnxruntime, so it also runs where plain `onnxruntime` is
installed and torch is not, on a model exported beforehand: NST_ORT_TEST_MODEL (conftest.py).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import onnx
import pytest

from nst_ort import contract
from nst_ort.backends import ort
from nst_ort.backends.graph import GradientSession, GraphBackend
from nst_ort.config import LossSpec, Optimizer
from nst_ort.contract import Arch, Pooling
from nst_ort.engine import Engine
from nst_ort.errors import NstError
from nst_ort.graphs import gradient_graph, target_shapes, weight_values
from nst_ort.loop import run_lbfgs
from nst_ort.model import load_model
from nst_ort.targets import TargetComputer
from tests.requires import needs_torch, needs_training, skip_without_training

GRAD_RTOL = 1e-4  # the bar for every pair of gradients
# The small exports of the arch x pooling matrix stop at relu3_1, which keeps them fast.
SMALL_CONTENT = ("relu1_2", "relu2_2")
SMALL_STYLE = ("relu1_1", "relu2_1", "relu3_1")
# Both leave one of the export's shallower layers out; the second is cut below its deepest.
# Every term is checked alone on the first, the cut on the second with all terms.
LAYER_SETS = {
    "to-relu3_1": ({"relu2_2": 1.0}, {"relu1_1": 0.5, "relu3_1": 2.0}),
    "to-relu2_1": ({"relu1_2": 1.0}, {"relu2_1": 1.5}),
}
# (α, β, γ[, the TV's colour weight]): each term alone, the TV also plain, then all together. β
# is large because random weights give small Grams: 1e5 makes the style gradient as large as the
# content one.
TERMS = {
    "content": (1.0, 0.0, 0.0),
    "style": (0.0, 1e5, 0.0),
    "tv": (0.0, 0.0, 1.0, 30.0),
    "tv-plain": (0.0, 0.0, 1.0, 1.0),
    "all": (1.0, 1e5, 0.5),
}
SIZES = ((48, 64), (45, 58))  # 45 and 29 (58/2) are odd: pooling drops a row or a column
KINK_MARGIN = 1e-6  # see kink_free_images


def relative_error(actual: np.ndarray, desired: np.ndarray) -> float:
    return float(np.max(np.abs(actual - desired)) / np.max(np.abs(desired)))


def random_images(height: int, width: int, seed: int) -> tuple[np.ndarray, ...]:
    """The image to differentiate at (NCHW) and a content and a style picture (HWC)."""
    rng = np.random.default_rng(seed)
    image = rng.random((1, 3, height, width), dtype=np.float32)
    return (
        image,
        rng.random((height, width, 3), dtype=np.float32),
        rng.random((height, width, 3), dtype=np.float32),
    )


def kink_margin(module, image: np.ndarray) -> float:
    """How near `image` takes the forward pass to a kink, relative to each layer's largest value:
    a ReLU's pre-activation at zero, or two equal maxima in a max-pooling window.
    """
    import torch

    sequence = module.features.sequence
    with torch.no_grad():
        feats = module.features(torch.from_numpy(image), set(sequence))
    margin = 1.0
    for previous, name in pairwise(sequence):
        if name.startswith("relu"):
            pre = feats[previous].abs()
            margin = min(margin, float(pre.min() / pre.max()))
        elif module.features.pooling is Pooling.MAX:
            x = feats[previous]
            n, c, h, w = x.shape
            windows = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
            top = windows.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4).topk(2).values
            gaps = (top[..., 0] - top[..., 1])[top[..., 0] > 0]  # windows of zeros route nothing
            margin = min(margin, float(gaps.min() / x.max()))
    return margin


def kink_free_images(module, height: int, width: int) -> tuple[np.ndarray, ...]:
    """random_images at the first seed whose image keeps KINK_MARGIN from every kink.

    At a kink the gradient jumps: a pre-activation within rounding of zero can switch its ReLU
    one way in ONNX Runtime and the other in torch (both right for their own forward pass), and
    the gradients then differ by up to 1e-2 however exact the backward pass. Rounding moves
    pre-activations by ~1e-7 of the layer's largest; flips were seen below 7e-8.
    """
    for seed in range(1000):
        images = random_images(height, width, seed)
        if kink_margin(module, images[0]) >= KINK_MARGIN:
            return images
    raise AssertionError("no kink-free image in 1000 seeds")


def zero_weighted(spec: LossSpec, content_layers, style_layers) -> LossSpec:
    """`spec` over all the given layers: those it does not use weigh zero."""
    return LossSpec(
        {layer: spec.content_layers.get(layer, 0.0) for layer in content_layers},
        {layer: spec.style_layers.get(layer, 0.0) for layer in style_layers},
        spec.content_weight,
        spec.style_weight,
        spec.tv_weight,
    )


def targets_for(model: onnx.ModelProto, spec: LossSpec, content: np.ndarray, style: np.ndarray) -> dict:
    computer = TargetComputer(model, spec, "cpu")
    height, width = content.shape[:2]
    targets = {
        **computer.content_targets(content),
        **computer.style_targets([style], [1.0], (height, width), 1.0),
    }
    return {**targets, **weight_values(spec)}


# --- torch and onnxruntime-training: parity ----------------------------------------------------


class SmallExport:
    """One small export, and what its test cases share: sessions, kink-free images, targets."""

    def __init__(self, path, arch: Arch, pooling: Pooling):
        from export.exporter import ExportSpec, build_loss_module, export_model
        from export.weights import random_weights

        spec = ExportSpec(arch, pooling, SMALL_CONTENT, SMALL_STYLE)
        weights = random_weights(arch, seed=1)
        export_model(path, spec, weights)
        self.model, self.info = load_model(path)
        self.module = build_loss_module(spec, weights)
        self._sessions: dict[str, GradientSession] = {}
        self._images: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}
        self._targets: dict[tuple, dict[str, np.ndarray]] = {}

    def session(self, spec: LossSpec) -> GradientSession:
        """One per layer set, as the engine keeps them."""
        if spec.layer_key() not in self._sessions:
            self._sessions[spec.layer_key()] = GradientSession(self.model, spec, "cpu")
        return self._sessions[spec.layer_key()]

    def inputs(self, spec: LossSpec, size: tuple[int, int]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A kink-free image of `size`, and the targets and weights of `spec`."""
        if size not in self._images:
            self._images[size] = kink_free_images(self.module, *size)
        image, content, style = self._images[size]
        key = (spec.layer_key(), size)
        if key not in self._targets:
            self._targets[key] = targets_for(self.model, spec, content, style)
        return image, {**self._targets[key], **weight_values(spec)}


@pytest.fixture(scope="session")
def small_exports(tmp_path_factory):
    """(arch, pooling) -> its SmallExport: random weights, layers to relu3_1."""
    made: dict[tuple[Arch, Pooling], SmallExport] = {}

    def get(arch: Arch, pooling: Pooling) -> SmallExport:
        if (arch, pooling) not in made:
            path = tmp_path_factory.mktemp("small") / f"{arch.value}-{pooling.value}.onnx"
            made[arch, pooling] = SmallExport(path, arch, pooling)
        return made[arch, pooling]

    return get


def module_inputs(module, spec: LossSpec, frozen: dict, size: tuple[int, int]) -> list:
    """The torch module's inputs after the image: it has every layer and both kinds of style
    term; those outside `spec` get zero weights and targets."""
    import torch

    everything = zero_weighted(spec, module.content_layers, module.style_layers)
    values = {
        name: np.zeros(shape, np.float32)
        for kind in contract.StyleLoss
        for name, shape in target_shapes(replace(everything, style_loss=kind), *size).items()
    }
    values.update(weight_values(everything))
    values.update(frozen)
    return [torch.from_numpy(np.asarray(values[name])) for name in module.input_names()[1:]]


def autograd_reference(module, spec: LossSpec, frozen: dict, image: np.ndarray):
    """Terms and dL/dimage from torch autograd on the export's torch module (Gram style terms:
    with zero sliced targets and directions, the sliced terms are zero)."""
    import torch

    x = torch.from_numpy(image).requires_grad_(True)
    loss, content, style, tv, *_ = module(x, *module_inputs(module, spec, frozen, image.shape[2:]))
    loss.backward()
    terms = {
        contract.LOSS: loss,
        contract.LOSS_CONTENT: content,
        contract.LOSS_STYLE: style,
        contract.LOSS_TV: tv,
    }
    return {k: float(v.detach()) for k, v in terms.items()}, x.grad.numpy()


@pytest.mark.parametrize(
    ("layers", "terms"), [*(("to-relu3_1", terms) for terms in TERMS), ("to-relu2_1", "all")]
)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pooling", list(Pooling), ids=lambda p: p.value)
@pytest.mark.parametrize("arch", list(Arch), ids=lambda a: a.value)
@needs_training
@needs_torch
def test_gradient_matches_autograd_and_ort_training(small_exports, arch, pooling, size, layers, terms):
    from nst_ort import paths
    from nst_ort.backends import artifacts
    from nst_ort.backends.training import TrainingBackend

    export = small_exports(arch, pooling)
    spec = LossSpec(*LAYER_SETS[layers], *TERMS[terms])
    image, frozen = export.inputs(spec, size)

    desired_terms, desired = autograd_reference(export.module, spec, frozen, image)
    graph_terms, graph_grad = GraphBackend(export.session(spec), frozen, image.shape).value_and_grad(image)
    entry = artifacts.ensure(export.model, export.info.sha256, spec, *size, paths.artifacts_dir())
    training_terms, training_grad = TrainingBackend(entry, frozen, "cpu").value_and_grad(image)

    assert relative_error(graph_grad, desired) <= GRAD_RTOL
    assert relative_error(training_grad, desired) <= GRAD_RTOL
    assert relative_error(graph_grad, training_grad) <= GRAD_RTOL
    for name, value in desired_terms.items():
        assert graph_terms[name] == pytest.approx(value, rel=1e-5, abs=1e-30), name
        assert graph_terms[name] == pytest.approx(training_terms[name], rel=1e-5, abs=1e-30), name


@pytest.mark.parametrize("pooling", list(Pooling), ids=lambda p: p.value)
@pytest.mark.parametrize("arch", list(Arch), ids=lambda a: a.value)
@needs_torch
def test_torch_backward_matches_autograd(arch, pooling):
    """export/gradient.py's forward-op backward pass, through every layer of a default export."""
    from export.exporter import ExportSpec, build_loss_module, example_inputs
    from export.gradient import StyleTransferGradient
    from export.weights import random_weights

    module = StyleTransferGradient(build_loss_module(ExportSpec(arch, pooling), random_weights(arch)))
    inputs = example_inputs(module, 37, 53)  # odd at every pooling layer
    outputs, _, desired = module.reference(*inputs)
    assert relative_error(outputs[contract.IMAGE_GRAD].numpy(), desired.numpy()) <= GRAD_RTOL


# --- onnxruntime only: runs with plain onnxruntime too -----------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, info = load_model(tiny_model)
    return tiny_model, model, info


def test_one_session_serves_every_size_and_matches_finite_differences(tiny):
    """No reference but the loss itself: dL along the gradient, by central differences.

    The step moves no pixel by more than 1e-3, where float32 losses still resolve the change and
    crossing ReLU kinks costs well under 1%; a gradient off by a factor or missing a term is not.
    """
    _, model, _ = tiny
    spec = LossSpec(content_weight=1.0, style_weight=1e5, tv_weight=0.5)
    session = GradientSession(model, spec, "cpu")
    for height, width in ((64, 80), (45, 58)):
        image, content, style = random_images(height, width, seed=height)
        backend = GraphBackend(session, targets_for(model, spec, content, style), image.shape)
        terms, grad = backend.value_and_grad(image)
        assert grad.shape == image.shape
        step = 1e-3 / np.max(np.abs(grad))
        plus = backend.value_and_grad(image + step * grad)[0][contract.LOSS]
        minus = backend.value_and_grad(image - step * grad)[0][contract.LOSS]
        actual = (plus - minus) / (2 * step)
        desired = float(np.sum(grad.astype(np.float64) ** 2))
        assert actual == pytest.approx(desired, rel=5e-3)


def test_cut_graph_equals_full_graph_with_zero_weights(tiny):
    """Cutting at the deepest layer in use and bypassing unused terms changes no number."""
    _, model, info = tiny
    spec = LossSpec({"relu2_2": 1.0}, {"relu1_1": 0.5, "relu3_1": 2.0}, 1.0, 1e5, 0.5)
    everything = zero_weighted(spec, info.content_layers, info.style_layers)
    image, content, style = random_images(48, 64, seed=3)
    full_frozen = targets_for(model, everything, content, style)
    full_terms, desired = GraphBackend(
        GradientSession(model, everything, "cpu"), full_frozen, image.shape
    ).value_and_grad(image)
    cut_frozen = {name: full_frozen[name] for name in (*target_shapes(spec, 1, 1), *weight_values(spec))}
    terms, actual = GraphBackend(GradientSession(model, spec, "cpu"), cut_frozen, image.shape).value_and_grad(
        image
    )
    assert relative_error(actual, desired) <= 1e-6
    for name, value in full_terms.items():
        assert terms[name] == pytest.approx(value, rel=1e-6)


def test_cut_graph_keeps_only_the_layers_in_use(tiny):
    _, model, _ = tiny
    spec = LossSpec({"relu1_2": 1.0}, {"relu2_1": 1.0})
    graph = gradient_graph(model, spec).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    # conv1_1, conv1_2, conv2_1 forward, and their input gradients.
    assert len(convs) == 6
    expected_inputs = {contract.IMAGE, *target_shapes(spec, 1, 1), *weight_values(spec)}
    assert {i.name for i in graph.input} == expected_inputs
    assert [o.name for o in graph.output] == [
        contract.LOSS,
        contract.LOSS_CONTENT,
        contract.LOSS_STYLE,
        contract.LOSS_TV,
        contract.IMAGE_GRAD,
    ]


def test_engine_refuses_a_model_without_gradient_graph(tiny, tmp_path):
    path, model, _ = tiny
    old = onnx.ModelProto()
    old.CopyFrom(model)
    props = [p for p in old.metadata_props if p.key != contract.META_GRADIENT_GRAPH]
    del old.metadata_props[:]
    old.metadata_props.extend(props)
    onnx.save(old, tmp_path / "old.onnx")
    with pytest.raises(NstError, match="old.onnx has no gradient graph.*`backend` ort-training"):
        Engine(tmp_path / "old.onnx", "cpu", backend="ort-graph")


def test_ort_training_is_refused_without_the_training_build(tiny, monkeypatch):
    monkeypatch.setattr(ort, "has_training", lambda: False)  # as where it is not installed
    with pytest.raises(NstError, match="no training API"):
        Engine(tiny[0], "cpu", backend="ort-training")


def test_stylize_cli_with_ort_graph(tiny, make_image, tmp_path, cli):
    content = make_image("content.png", 40, 56, seed=1)
    style = make_image("style.png", 48, 48, seed=2)
    output = tmp_path / "out.png"
    result = cli(
        "stylize", content, style, "-o", output, "--model", tiny[0], "--backend", "ort-graph",
        "--size", "56", "--iterations", "3", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    from PIL import Image

    with Image.open(output) as written:
        assert written.size == (56, 40)


def test_a_model_without_gradient_graph_names_the_backend_option(tiny, make_image, tmp_path, cli):
    path, model, _ = tiny
    old = onnx.ModelProto()
    old.CopyFrom(model)
    props = [p for p in old.metadata_props if p.key != contract.META_GRADIENT_GRAPH]
    del old.metadata_props[:]
    old.metadata_props.extend(props)
    onnx.save(old, tmp_path / "old.onnx")
    result = cli(
        "stylize",
        make_image(),
        make_image("s.png"),
        "-o",
        tmp_path / "o.png",
        "--model",
        tmp_path / "old.onnx",
    )
    assert result.exit_code == 2
    assert result.error.endswith(
        "old.onnx has no gradient graph; export it again with this nst-ort or use --backend ort-training"
    )


# --- optimisation runs: both backends ----------------------------------------------------------


@pytest.fixture(scope="module")
def engines(tiny):
    skip_without_training()
    path = tiny[0]
    # The two float32 backends, which must agree (openvino-bf16 is bf16: tests/backends/test_openvino.py)
    return {
        backend: Engine(path, "cpu", threads=1, backend=backend) for backend in ("ort-graph", "ort-training")
    }


# The paper's plain sums, the weights chosen for them.
SPEC = LossSpec({"relu2_2": 1.0}, {"relu1_1": 0.5, "relu2_1": 0.5}, 1.0, 1e5, 0.5, normalize=False)


class Recording:
    """An objective that keeps every image it is evaluated at."""

    def __init__(self, objective):
        self.objective, self.shape, self.images = objective, objective.shape, []

    def value_and_grad(self, image):
        self.images.append(np.array(image, np.float32))
        return self.objective.value_and_grad(image)


def test_lbfgs_sees_the_same_function_through_both_backends(engines):
    """L-BFGS-B's path is chaotic: which pixels sit on the [0, 1] bounds decides each step, so
    gradients ~3e-7 apart (relative) part the two backends' images by 1e-3 after two iterations
    and 0.16 after ten on some machines. What holds everywhere: at every image one run visits,
    both backends give the same terms and gradient; the first iteration, before any bound
    decides, lands on the same image; and the loss falls with either."""
    init, content, style = random_images(40, 48, seed=7)
    objectives = {}
    for backend, engine in engines.items():
        targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (40, 48))
        frozen = {**targets.values, **weight_values(SPEC)}
        objectives[backend] = engine.gradient.prepare(SPEC, frozen, 40, 48).objective
    graph, training = objectives["ort-graph"], objectives["ort-training"]
    recording = Recording(graph)
    result = run_lbfgs(recording, init, 10)
    assert result.status == "done" and len(recording.images) >= 10
    for image in recording.images:
        graph_terms, graph_grad = graph.value_and_grad(image)
        training_terms, training_grad = training.value_and_grad(image)
        assert relative_error(graph_grad, training_grad) <= GRAD_RTOL
        for name, value in graph_terms.items():
            assert value == pytest.approx(training_terms[name], rel=1e-5, abs=1e-30), name

    first = {}
    for backend, engine in engines.items():
        targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (40, 48))
        first[backend], _ = engine.optimize(SPEC, targets, init, Optimizer.LBFGS, 1, 0.02)
    np.testing.assert_allclose(first["ort-graph"].image, first["ort-training"].image, atol=1e-4, rtol=0)
    actual, desired = (first[b].records[0].terms[contract.LOSS] for b in ("ort-graph", "ort-training"))
    assert actual == pytest.approx(desired, rel=1e-5)

    for backend, engine in engines.items():
        targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (40, 48))
        run, _ = engine.optimize(SPEC, targets, init, Optimizer.LBFGS, 10, 0.02)
        losses = [record.terms[contract.LOSS] for record in run.records]
        assert run.status == "done" and losses[-1] < 0.5 * losses[0], backend


def test_adam_gives_the_same_image_with_both_backends(engines):
    """Same targets, same start: after two steps the images agree within 1e-5 (pixel values).

    Per evaluation the gradients differ by ~3e-7 (relative). Adam's second step already uses
    both moments and both bias corrections (images ~4e-7 apart); from the third on, m/√v
    magnifies the gradient difference wherever a pixel's gradient is tiny, and single pixels
    part by ~1e-3. Here no pixel's gradient is within 10x of that difference, so two steps are
    stable wherever the gradients are.
    """
    init, content, style = random_images(40, 48, seed=7)
    results = {}
    for backend, engine in engines.items():
        targets = engine.targets(SPEC, content, [style], [1.0], 1.0, (40, 48))
        results[backend], _ = engine.optimize(SPEC, targets, init, Optimizer.ADAM, 2, 0.02)
    graph, training = results["ort-graph"], results["ort-training"]
    assert graph.status == training.status == "done"
    assert graph.records[-1].terms[contract.LOSS] < graph.records[0].terms[contract.LOSS]
    np.testing.assert_allclose(graph.image, training.image, atol=1e-5, rtol=0)
    for actual, desired in zip(graph.records, training.records, strict=True):
        assert actual.terms[contract.LOSS] == pytest.approx(desired.terms[contract.LOSS], rel=1e-5)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@needs_torch
def test_sliced_gradient_matches_autograd(small_exports, size):
    """The sliced style term's value and dL/dimage, the graph's against torch autograd on the
    export's module: α Σ w_c C_l + β Σ w_l S_l + γ TV with the matched values held fixed."""
    import torch

    export = small_exports(Arch.VGG16, Pooling.AVG)
    # β: random weights give small sliced terms too; 1e4 makes the two kinds of term alike.
    spec = LossSpec(*LAYER_SETS["to-relu3_1"], 1.0, 1e4, 0.5, style_loss=contract.StyleLoss.SLICED)
    image, frozen = export.inputs(spec, size)
    module = export.module
    x = torch.from_numpy(image).requires_grad_(True)
    outputs = dict(
        zip(module.output_names(), module(x, *module_inputs(module, spec, frozen, size)), strict=True)
    )
    content = sum(w * outputs[contract.content_loss(layer)] for layer, w in spec.content_layers.items())
    style = sum(w * outputs[contract.sliced_loss(layer)] for layer, w in spec.style_layers.items())
    loss = 1.0 * content + 1e4 * style + 0.5 * outputs[contract.LOSS_TV]
    loss.backward()

    actual_terms, actual = GraphBackend(export.session(spec), frozen, image.shape).value_and_grad(image)
    assert relative_error(actual, x.grad.numpy()) <= 1e-3  # the exporter's bound for this term
    assert actual_terms[contract.LOSS_STYLE] == pytest.approx(float(style.detach()), rel=1e-4)
    assert actual_terms[contract.LOSS] == pytest.approx(float(loss.detach()), rel=1e-4)
    assert 1e4 * float(style) > 0.1 * float(content)  # the term counts: not zero compared with zero
