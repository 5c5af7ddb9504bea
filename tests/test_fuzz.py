"""Bounded fuzzing: the image loader and the CLI's option parsing fail only with clean errors."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from nst_ort import contract
from nst_ort.cli import app
from nst_ort.errors import NstError
from nst_ort.imageio import load_image

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP"]


@FUZZ
@given(header=st.sampled_from(HEADERS), body=st.binary(max_size=512))
def test_loader_on_arbitrary_bytes(tmp_path, header, body):
    path = tmp_path / "fuzz.img"
    path.write_bytes(header + body)
    try:
        image = load_image(path)
    except NstError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32


@FUZZ
@given(
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I", "I;16", "F"]),
    width=st.integers(1, 40),
    height=st.integers(1, 40),
    fmt=st.sampled_from(["PNG", "TIFF", "JPEG", "BMP", "WEBP", "GIF"]),
    cut=st.one_of(st.none(), st.floats(0.05, 0.95)),
)
def test_loader_on_real_formats_modes_and_truncations(tmp_path, mode, width, height, fmt, cut):
    rng = np.random.default_rng(width * 100 + height)
    source = Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).convert(mode)
    buffer = io.BytesIO()
    try:
        source.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # Pillow cannot write that mode in that format: nothing to load
    data = buffer.getvalue()
    path = tmp_path / f"fuzz.{fmt.lower()}"
    path.write_bytes(data if cut is None else data[: int(len(data) * cut)])
    try:
        image = load_image(path)
    except NstError as exc:
        assert "\n" not in str(exc)
        if cut is None:  # a whole file fails only for being too small
            assert min(width, height) < 16 and "at least 16 px" in str(exc)
    else:
        assert image.shape == (*np.asarray(Image.open(path)).shape[:2], 3)
        assert 0.0 <= image.min() and image.max() <= 1.0


LAYERS = contract.loss_layers(contract.Arch.VGG16)
layer_spec = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.sampled_from([*LAYERS, "relu9_9", "", "conv1_1"]),
            st.one_of(st.none(), st.text(max_size=5), st.floats(allow_nan=True).map(str)),
        ),
        max_size=4,
    ).map(lambda items: ",".join(k if w is None else f"{k}:{w}" for k, w in items)),
)
number = st.one_of(
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-5, 10**6).map(str),
)


@FUZZ
@given(
    style_layers=layer_spec,
    content_layers=layer_spec,
    size=number,
    style_weight=number,
    blend=st.text(max_size=12),
    init=st.sampled_from(["noise", "content", "style", "nope", "", "/"]),
)
def test_cli_option_parsing(
    tiny_model, tmp_path, style_layers, content_layers, size, style_weight, blend, init
):
    # The content file does not exist: whatever the options, no optimisation starts.
    args = [
        "stylize",
        str(tmp_path / "missing.png"),
        str(tmp_path / "style.png"),
        "-o",
        str(tmp_path / "o.png"),
        "--model",
        str(tiny_model),
        "--style-layers",
        style_layers,
        "--content-layers",
        content_layers,
        "--size",
        size,
        "--style-weight",
        style_weight,
        "--style-blend",
        blend,
        "--init",
        init,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert isinstance(result.exception, NstError), repr(result.exception)
        assert result.exception.exit_code == 2 and "\n" not in str(result.exception)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(("mode", "top"), [("I", 65535), ("F", 1.0), ("F", 255.0)])
def test_int_and_float_images_scale_by_their_range(tmp_path, mode, top):
    path = tmp_path / "x.tiff"
    ramp = np.linspace(0, top, 20 * 30).reshape(20, 30)
    Image.fromarray(ramp.astype(np.int32 if mode == "I" else np.float32), mode=mode).save(path)
    actual = load_image(path)[..., 0]
    np.testing.assert_allclose(actual, ramp / top, atol=1e-3)
