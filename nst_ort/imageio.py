"""Reading, resizing and writing images: float32 RGB in [0, 1], height x width x 3."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.files import atomic_path


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit, 32-bit and float grayscale: scale by the range the values use rather than let
        # Pillow clip them to 0–255 (floats in [0, 1] are taken as they are).
        array = np.asarray(image, dtype=np.float64)
        peak = float(array.max()) if array.size else 0.0
        if image.mode.startswith("I;16") or peak > 255:
            top = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            top = 1.0
        else:
            top = 255.0
        gray = np.clip(array / top, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white, as a viewer shows them, not whatever colour they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def load_image(path: Path, data: bytes | None = None) -> np.ndarray:
    """Any image Pillow reads, EXIF orientation applied, as RGB float32 in [0, 1].

    `data`: the file's bytes, read on another machine (a Ray worker's images come through the
    object store); `path` then only names the image in errors.
    """
    path = Path(path)
    if data is None and not path.exists():
        raise NstError(f"{path}: no such file")
    if data is None and path.is_dir():
        raise NstError(f"{path}: is a directory, not an image")
    try:
        # Pillow warns (e.g. "Corrupt EXIF data") on the way to an image or to an exception that
        # becomes the one-line error below: the warning would only add lines to that message.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                image.load()
                image = ImageOps.exif_transpose(image)
                array = _to_rgb(image)
    except UnidentifiedImageError:
        raise NstError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise NstError(f"{path}: damaged image ({exc})") from None
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise NstError(f"{path}: image is {width}x{height} px; at least {MIN_SIDE} px per side needed")
    return array


def fit_longest(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) with the longest side `size`, aspect ratio kept."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


Box = tuple[float, float, float, float]  # (left, top, right, bottom) in the source's pixels


def resize(image: np.ndarray, height: int, width: int, box: Box | None = None) -> np.ndarray:
    """`image` (or its region `box`) at height x width, Lanczos, clipped to [0, 1].

    A region's pixels are those of the whole image resized to the region's scale (to ~1e-6;
    Pillow's filter reads the source beyond the box), so tiles cut this way fit together."""
    if box is None and image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(
            Image.fromarray(image[:, :, c].astype(np.float32), mode="F").resize(
                (width, height), Image.Resampling.LANCZOS, box=box
            )
        )
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(path: Path, image: np.ndarray) -> None:
    """Write atomically; the format follows the file extension."""
    path = Path(path)
    extension = path.suffix.lower()
    formats = Image.registered_extensions()
    if extension not in formats:
        raise NstError(f"{path}: unknown image extension '{path.suffix}' (use .png or .jpg)")
    picture = Image.fromarray(to_uint8(image), mode="RGB")
    with atomic_path(path) as tmp:
        try:
            picture.save(tmp, format=formats[extension])
        except (KeyError, ValueError) as exc:
            raise NstError(f"{path}: cannot write this format ({exc})") from None


def to_nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)


def from_nchw(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.reshape(array.shape[-3:]).transpose(1, 2, 0))
