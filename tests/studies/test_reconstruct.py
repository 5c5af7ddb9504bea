"""Reconstructions from one loss alone (the paper's Figure 1)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from nst_ort.imageio import load_image
from nst_ort.studies.reconstruct import DEFAULTS, ReconstructKind, reconstruct, reconstruction_loss


def test_reconstruction_loss_is_one_loss_alone():
    content = reconstruction_loss(ReconstructKind.CONTENT, ["relu2_2"])
    style = reconstruction_loss(ReconstructKind.STYLE, ["relu1_1", "relu2_1"])
    assert (content.content_layers, content.style_layers) == ({"relu2_2": 1.0}, {})
    assert (style.content_layers, style.style_layers) == ({}, {"relu1_1": 0.5, "relu2_1": 0.5})


def test_content_reconstruction_is_exact_low_and_loose_high(tiny_model, make_image):
    """The paper's Figure 1: a low layer keeps the pixels, a high one only the arrangement."""
    image = make_image("c.png", 64, 64, seed=0)
    desired = load_image(image)
    errors = {}
    for layer in ("relu1_2", "relu5_2"):
        config = replace(
            DEFAULTS,
            model=tiny_model,
            size=64,
            iterations=15,
            loss=reconstruction_loss(ReconstructKind.CONTENT, [layer]),
        )
        result = reconstruct(image, ReconstructKind.CONTENT, config)
        assert result.image.shape == (64, 64, 3)
        final = result.report.finish(result.status, result.message, None)["final"]
        assert final["loss.style"] == 0.0
        errors[layer] = float(np.mean(np.abs(result.image - desired)))
    assert errors["relu1_2"] < 0.01
    assert errors["relu5_2"] > 0.1
