"""The config: its defaults, Status, the report round trip, and the one validation pass."""

from dataclasses import replace
from pathlib import Path

import pytest

from nst_ort import errors
from nst_ort.config import (
    InitKind,
    LossSpec,
    Optimizer,
    Status,
    StylizeConfig,
    config_from_dict,
    parse_init,
    pass_sizes,
    validate,
)
from nst_ort.contract import StyleLoss
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo
from nst_ort.report import plain

INFO = ModelInfo(
    Path("m.onnx"),
    "0" * 64,
    1,
    1,
    None,
    None,
    "random:0",
    "",
    ("relu1_2", "relu2_2", "relu4_2"),
    ("relu1_1", "relu2_1"),
    {},
    "",
    "",
    True,
)


def test_defaults_are_the_papers_and_ours():
    config = StylizeConfig()
    assert (config.size, config.iterations, config.optimizer, config.lr) == (512, 500, Optimizer.ADAM, 0.02)
    assert (config.init, config.min_scale, config.ema_decay) == (InitKind.NOISE, 128, 0.99)
    assert config.tile == 0  # chosen from the memory (nst_ort/tiles/budget.py)
    # The paper's relu4_2 and five style layers; relu2_2, the layer weights falling with depth,
    # the normalisation and TV are ours (docs/quality.md).
    assert config.loss.content_layers == {"relu4_2": 1.0, "relu2_2": 0.5}
    assert config.loss.style_layers == {
        "relu1_1": 0.3,
        "relu2_1": 0.25,
        "relu3_1": 0.2,
        "relu4_1": 0.15,
        "relu5_1": 0.1,
    }
    loss = config.loss
    assert (loss.content_weight, loss.style_weight, loss.tv_weight, loss.normalize) == (1.0, 10.0, 1.5, True)
    assert config.backend == "auto"  # ort-graph, or bf16 where it pays (backends.resolve)


def test_status_reads_as_its_value_and_knows_its_exit_code():
    assert f"{Status.DONE}: out.png" == "done: out.png" and str(Status.NONFINITE) == "nonfinite"
    assert Status.DONE == "done" and Status("interrupted") is Status.INTERRUPTED
    actual = {status: status.exit_code for status in Status}
    assert actual == {
        Status.RUNNING: 0,
        Status.DONE: 0,
        Status.CONVERGED: 0,
        Status.INTERRUPTED: errors.INTERRUPTED,
        Status.NONFINITE: errors.FAILURE,
        Status.FAILED: errors.FAILURE,
    }
    assert [s for s in Status if s.stopped] == [Status.INTERRUPTED, Status.NONFINITE, Status.FAILED]


def test_config_round_trips_through_its_report_form(tmp_path):
    image = tmp_path / "start.png"
    desired = StylizeConfig(
        model=tmp_path / "m.onnx",
        init=image,
        loss=LossSpec({"relu1_2": 0.5}, {"relu2_1": 1.0}, 2.0, 3e3, 0.1),
        style_blend=(1.0, 3.0),
        scales=(64, 128),
        tile=256,
        backend="ort-training",
    )
    assert config_from_dict(plain(desired)) == desired
    assert parse_init("noise") is InitKind.NOISE and parse_init("x.png") == Path("x.png")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": 8}, "`size` 8 is too small; at least 16 px"),
        ({"iterations": 0}, "`iterations` 0: at least 1"),
        ({"lr": float("inf")}, "`lr` inf: must be a finite number"),
        ({"lr": -0.1}, "`lr` -0.1: must not be negative"),
        ({"style_scale": 0.0}, "`style_scale` 0.0: must be positive"),
        ({"style_blur": -0.5}, "`style_blur` -0.5: must be a finite number, 0 or more"),
        ({"loss": LossSpec(tv_chroma=float("inf"))}, "`tv_chroma` inf: must be a finite number, 0 or more"),
        ({"threads": -1}, "`threads` -1: 0 (one per core) or more"),
        ({"tile": 31}, "`tile` 31: 0 (chosen from the memory) or at least 32 px"),
        ({"tile": -64}, "`tile` -64: 0 (chosen from the memory) or at least 32 px"),
        (
            {"backend": "nope"},
            "`backend` nope: not one of auto, ort-graph, ort-training, openvino-bf16, ov-bf16",
        ),
        ({"init": Path("/no/such.png")}, "`init` /no/such.png: not noise, content, style or an image file"),
        ({"scales": (64, 32)}, "`scales` must increase, e.g. 256,512"),
        ({"size": 64, "scales": (32, 128)}, "`scales` 128 is larger than `size` 64"),
        ({"scales": (8,)}, "`scales`: every scale must be at least 16 px"),
        (
            {"size": 64, "scales": (32,), "scale_iterations": (5,)},
            "`scale_iterations` has 1 counts for 2 passes (32, 64 px)",
        ),
        (
            {"size": 64, "scales": (32,), "scale_iterations": (5, 0)},
            "`scale_iterations`: every count must be at least 1",
        ),
        ({"style_blend": (1.0, -1.0)}, "`style_blend` weights must be finite, non-negative and not all zero"),
        (
            {"style_blend": (float("nan"), 1.0)},
            "`style_blend` weights must be finite, non-negative and not all zero",
        ),
        ({"loss": LossSpec(style_weight=float("nan"))}, "`style_weight` nan: must be a finite number"),
        (
            {"loss": LossSpec(style_layers={"relu1_1": -1.0})},
            "`style_layers`: weight -1.0 for relu1_1 must be a finite number, 0 or more",
        ),
    ],
)
def test_validate_names_the_field(change, message):
    with pytest.raises(NstError) as error:
        validate(replace(StylizeConfig(), **change), styles=2)
    assert str(error.value) == message


def test_validate_with_what_the_run_knows():
    validate(StylizeConfig(loss=LossSpec({"relu4_2": 1.0}, {"relu1_1": 1.0})), INFO, styles=1, frame=(48, 64))
    with pytest.raises(NstError, match="`style_blend` has 2 weights for 1 style images"):
        validate(StylizeConfig(style_blend=(1.0, 2.0)), styles=1)
    with pytest.raises(NstError) as error:
        validate(StylizeConfig(), INFO)
    assert str(error.value) == (
        "m.onnx has no style layer relu3_1, relu4_1, relu5_1; it has relu1_1, relu2_1 "
        "(`nst-ort export` exports every layer of its network)"
    )
    with pytest.raises(
        NstError, match="^`scales` 20 makes a 20x8 image; the deepest layers need at least 16 px"
    ):
        validate(StylizeConfig(size=80, scales=(20,)), frame=(32, 80))
    with pytest.raises(NstError, match="^`size` 40 makes a 40x10 image"):
        validate(StylizeConfig(size=40), frame=(32, 128))


def test_pass_sizes_end_at_size():
    assert pass_sizes(StylizeConfig(size=64)) == [64]
    assert pass_sizes(StylizeConfig(size=64, scales=(32,))) == [32, 64]
    assert pass_sizes(StylizeConfig(size=64, scales=(32, 64))) == [32, 64]


def test_style_loss_round_trips_and_reports_from_before_it_ran_the_gram():
    desired = StylizeConfig(loss=LossSpec(style_loss=StyleLoss.SLICED))
    assert config_from_dict(plain(desired)) == desired
    old = plain(StylizeConfig())
    del old["loss"]["style_loss"]
    assert config_from_dict(old).loss.style_loss is StyleLoss.GRAM
    assert LossSpec(style_loss=StyleLoss.SLICED).layer_key() != LossSpec().layer_key()


def test_the_sliced_term_needs_an_export_that_has_it():
    spec = LossSpec({"relu1_2": 1.0}, {"relu1_1": 1.0}, style_loss=StyleLoss.SLICED)
    with pytest.raises(NstError) as error:
        validate(StylizeConfig(loss=spec), INFO, styles=1)
    assert str(error.value) == (
        "`style_loss`: m.onnx has no sliced style term; export it again with this version (`nst-ort export`)"
    )
    validate(StylizeConfig(loss=spec), replace(INFO, style_losses=("gram", "sliced")), styles=1)


def test_reports_from_before_the_style_blur_and_the_colour_tv_ran_without_them():
    old = plain(StylizeConfig())
    del old["style_blur"], old["loss"]["tv_chroma"]
    actual = config_from_dict(old)
    assert (actual.style_blur, actual.loss.tv_chroma) == (0.0, 1.0)
