"""Reading images of every mode and format, or failing with one line naming the file."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst_ort.errors import NstError
from nst_ort.imageio import load_image

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP"]


def write(path, mode, size=(40, 30), **save):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray((rng.random(size[::-1]) * 65535).astype(np.uint16))
    else:
        image = Image.fromarray((rng.random((*size[::-1], 3)) * 255).astype(np.uint8)).convert(mode)
    image.save(path, **save)
    return path


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("gray.png", "L"),
        ("cmyk.jpg", "CMYK"),
        ("palette.png", "P"),
        ("alpha.png", "RGBA"),
        ("gray16.png", "I;16"),
        ("la.png", "LA"),
        ("bw.png", "1"),
    ],
)
def test_image_modes_load_as_rgb(tmp_path, name, mode):
    image = load_image(write(tmp_path / name, mode))
    assert image.shape == (30, 40, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05


def test_sixteen_bit_keeps_its_range(tmp_path):
    path = tmp_path / "ramp16.png"
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (20, 1))
    Image.fromarray(ramp).save(path)
    actual = load_image(path)[0, :, 0]
    np.testing.assert_allclose(actual, np.linspace(0, 1, 64), atol=1e-4)


@pytest.mark.parametrize(("mode", "top"), [("I", 65535), ("F", 1.0), ("F", 255.0)])
def test_int_and_float_images_scale_by_their_range(tmp_path, mode, top):
    path = tmp_path / "x.tiff"
    ramp = np.linspace(0, top, 20 * 30).reshape(20, 30)
    Image.fromarray(ramp.astype(np.int32 if mode == "I" else np.float32), mode=mode).save(path)
    actual = load_image(path)[..., 0]
    np.testing.assert_allclose(actual, ramp / top, atol=1e-3)


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(path)
    np.testing.assert_allclose(load_image(path), 1.0)


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == (40, 20, 3)  # displayed portrait
    assert image[:15].mean() > 0.9 and image[-15:].mean() < 0.1  # the white half ends up on top


def test_truncated_jpeg(tmp_path, make_image):
    good = make_image("good.jpg", 64, 64)
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(NstError, match="truncated.jpg: damaged image"):
        load_image(bad)


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


def test_an_image_read_elsewhere_decodes_as_its_file(tmp_path):
    """A Ray worker gets a file's bytes, not the file: the same pixels, errors naming the file."""
    path = write(tmp_path / "photo.jpg", "RGB", quality=90)
    elsewhere = tmp_path / "not-here" / "photo.jpg"  # no such file where the bytes are decoded
    np.testing.assert_array_equal(load_image(elsewhere, path.read_bytes()), load_image(path))
    with pytest.raises(NstError, match=f"^{elsewhere}: not an image Pillow can read$"):
        load_image(elsewhere, b"not an image")


def test_a_region_resized_is_that_region_of_the_whole_resized():
    from nst_ort.imageio import resize

    image = np.random.default_rng(1).random((70, 93, 3), dtype=np.float32)
    whole = resize(image, 141, 187)
    assert np.array_equal(resize(image, 141, 187, (0, 0, 93, 70)), whole)
    sy, sx = 70 / 141, 93 / 187
    part = resize(image, 60, 80, (51 * sx, 37 * sy, 131 * sx, 97 * sy))
    np.testing.assert_allclose(part, whole[37:97, 51:131], rtol=0, atol=1e-5)
