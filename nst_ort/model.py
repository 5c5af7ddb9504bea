"""Reading an exported model file: checks, metadata, and the file's identity."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from nst_ort import contract
from nst_ort.errors import NstError


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    size_bytes: int
    format_version: int
    arch: contract.Arch
    pooling: contract.Pooling
    weights: str
    weights_sha256: str
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    preprocessing: dict
    torch_version: str
    onnx_version: str
    has_gradient_graph: bool
    # The style terms the export has (contract.StyleLoss); exports before the sliced term: gram.
    style_losses: tuple[str, ...] = (contract.StyleLoss.GRAM.value,)

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "format_version": self.format_version,
            "arch": self.arch.value,
            "pooling": self.pooling.value,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "content_layers": list(self.content_layers),
            "style_layers": list(self.style_layers),
            "preprocessing": self.preprocessing,
            "torch_version": self.torch_version,
            "onnx_version": self.onnx_version,
            "gradient_graph": self.has_gradient_graph,
            "style_losses": list(self.style_losses),
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(path: Path) -> tuple[onnx.ModelProto, ModelInfo]:
    """Load and check an nst-ort export; every way it can be wrong is a one-line NstError."""
    path = Path(path)
    if not path.exists():
        raise NstError(f"{path}: no such model file; run `nst-ort export` first or pass `model`")
    if not path.is_file():
        raise NstError(f"{path}: is a directory, not a model file")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, OSError):
        raise NstError(f"{path}: not an ONNX model") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if contract.META_FORMAT_VERSION not in meta:
        raise NstError(f"{path}: an ONNX model, but not one written by `nst-ort export`")
    version = meta[contract.META_FORMAT_VERSION]
    if version != str(contract.FORMAT_VERSION):
        raise NstError(
            f"{path}: model format version {version}, this nst-ort reads version "
            f"{contract.FORMAT_VERSION}; export it again with this version"
        )
    try:
        info = ModelInfo(
            path=path,
            sha256=sha256_file(path),
            size_bytes=path.stat().st_size,
            format_version=int(version),
            arch=contract.Arch(meta[contract.META_ARCH]),
            pooling=contract.Pooling(meta[contract.META_POOLING]),
            weights=meta[contract.META_WEIGHTS],
            weights_sha256=meta[contract.META_WEIGHTS_SHA256],
            content_layers=tuple(meta[contract.META_CONTENT_LAYERS].split(",")),
            style_layers=tuple(meta[contract.META_STYLE_LAYERS].split(",")),
            preprocessing=json.loads(meta[contract.META_PREPROCESSING]),
            torch_version=meta.get(contract.META_TORCH_VERSION, ""),
            onnx_version=meta.get(contract.META_ONNX_VERSION, ""),
            has_gradient_graph=contract.META_GRADIENT_GRAPH in meta,
            style_losses=tuple(
                meta.get(contract.META_STYLE_LOSSES, contract.StyleLoss.GRAM.value).split(",")
            ),
        )
    except (KeyError, ValueError) as exc:
        raise NstError(f"{path}: damaged nst-ort metadata ({exc})") from None
    return model, info
