"""The memory estimate, and the largest size that fits."""

import pytest

from nst_ort.config import LossSpec
from nst_ort.errors import NstError
from nst_ort.memory import check_fits, estimate_bytes, largest_fitting_side
from nst_ort.model import load_model


def test_memory_estimate_and_largest_size(tiny_model):
    _, info = load_model(tiny_model)
    spec = LossSpec()
    small, large = (
        estimate_bytes(info, spec, 256, 256, "ort-training"),
        estimate_bytes(info, spec, 512, 512, "ort-training"),
    )
    assert 0.5e9 < small < 2e9 and large > small  # measured: about 1.2 GB at 256 px
    side = largest_fitting_side(info, spec, 300, 400, large, "ort-training")
    assert 560 <= side <= 591 and side % 16 == 0  # 0.75·L² = 512² gives L = 591
    assert estimate_bytes(info, spec, side * 3 // 4, side, "ort-training") <= large
    check_fits(info, spec, 300, 400, "ort-training", available=large)
    with pytest.raises(NstError, match="400x300 px needs about .* GiB"):
        check_fits(info, spec, 300, 400, "ort-training", available=small // 2)


def test_the_estimate_follows_the_backend(tiny_model):
    _, info = load_model(tiny_model)
    spec = LossSpec()
    graph = estimate_bytes(info, spec, 768, 1024, "ort-graph")
    training = estimate_bytes(info, spec, 768, 1024, "ort-training")
    # Measured here: a coarse-to-fine run to 1024 px peaked at 3.84e9 bytes with ort-graph;
    # ort-training takes 7.1 KB per pixel.
    assert 3.84e9 < graph < 5e9
    assert training > 7.1e3 * 768 * 1024 and graph < 0.65 * training
    assert estimate_bytes(info, spec, 768, 1024, "openvino-bf16") == training  # not measured: the larger


def test_the_sliced_term_adds_its_measured_share(tiny_model):
    _, info = load_model(tiny_model)
    gram, sliced = (
        estimate_bytes(info, LossSpec(style_loss=kind), 512, 512, "ort-graph") for kind in ("gram", "sliced")
    )
    # Measured here: one evaluation at 512 px peaked 0.51 GB above the Gram term's (2.1 against 1.6).
    assert 0.51e9 < sliced - gram < 0.8e9
