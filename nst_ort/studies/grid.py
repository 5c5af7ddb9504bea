"""A sweep's grid: its axes, parsed from their text, and its cells, each a config with a key.

A sweep varies settings for one content and one style image (the paper's Figure 3); a batch is
the grid whose axes are the content images and the style images, with the settings fixed.
Nothing here runs anything: sweep.py runs the cells (here, in a process pool or on a Ray
cluster), summary.py writes the sheet and the results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from nst_ort import layerspec
from nst_ort.config import InitKind, StylizeConfig
from nst_ort.contract import MIN_SIDE
from nst_ort.errors import NstError
from nst_ort.model import ModelInfo, sha256_file
from nst_ort.report import plain

# Sweeps start from noise, as the paper's figures do, and default to a size that keeps a grid
# of a few dozen cells within an hour or two on a CPU.
DEFAULTS = StylizeConfig(size=256, init=InitKind.NOISE)


class AxisKind(str, Enum):
    CONTENT = "content"  # a batch's content images
    STYLE = "style"  # a batch's style images
    CONTENT_LAYER = "content_layer"
    STYLE_LAYERS = "style_layers"
    STYLE_SIZE = "style_size"
    STYLE_SCALE = "style_scale"
    RATIO = "ratio"


# The order in which axes become rows, then columns: layers down the side and α/β across, as in
# the paper's Figure 3; a batch's photos down the side and its styles across.
AXIS_ORDER = list(AxisKind)

AXIS_TITLES = {
    AxisKind.CONTENT: "content",
    AxisKind.STYLE: "style",
    AxisKind.CONTENT_LAYER: "content layer",
    AxisKind.STYLE_LAYERS: "style layers",
    AxisKind.STYLE_SIZE: "style size (px)",
    AxisKind.STYLE_SCALE: "style scale",
    AxisKind.RATIO: "alpha/beta",
}


@dataclass(frozen=True)
class Axis:
    kind: AxisKind
    values: tuple  # a layer name, a tuple of layer names, a number or an image path per position
    labels: tuple[str, ...]

    @property
    def title(self) -> str:
        return AXIS_TITLES[self.kind]


def parse_content_layers(text: str, available: tuple[str, ...]) -> Axis:
    """`relu1_2,relu3_2` or `relu1_2..relu5_2`: one content layer per cell."""
    layers = layerspec.layer_list(text, available, "content")
    return Axis(AxisKind.CONTENT_LAYER, tuple(layers), tuple(layers))


def parse_style_layers(text: str, available: tuple[str, ...]) -> Axis:
    """Style layer sets, one per cell (layerspec.layer_sets: `+` sets, ranges, `cumulative:`)."""
    sets, cumulative = layerspec.layer_sets(text, available, "style")
    if cumulative:
        labels = [s[0] if len(s) == 1 else f"{s[0]}..{s[-1]}" for s in sets]
    else:
        labels = ["+".join(s) for s in sets]
    return Axis(AxisKind.STYLE_LAYERS, tuple(sets), tuple(labels))


def parse_numbers(kind: AxisKind, text: str) -> Axis:
    field = f"`{kind.value}`"
    values = layerspec.numbers(text, field)
    if not values:
        raise NstError(f"{field}: no values given")
    if any(not v > 0 for v in values):
        raise NstError(f"{field}: values must be positive")
    if kind is AxisKind.STYLE_SIZE:
        if any(v != int(v) or v < MIN_SIDE for v in values):
            raise NstError(f"{field}: sizes must be whole numbers of pixels, at least {MIN_SIDE}")
        return Axis(kind, tuple(int(v) for v in values), tuple(f"{int(v)} px" for v in values))
    if kind is AxisKind.STYLE_SCALE:
        return Axis(kind, tuple(values), tuple(f"x{v:g}" for v in values))
    return Axis(kind, tuple(values), tuple(scientific(v) for v in values))


def parse_axis(kind: AxisKind, text: str, info: ModelInfo) -> Axis:
    """An axis from its text, layers checked against the model's."""
    if kind is AxisKind.CONTENT_LAYER:
        return parse_content_layers(text, info.content_layers)
    if kind is AxisKind.STYLE_LAYERS:
        return parse_style_layers(text, info.style_layers)
    return parse_numbers(kind, text)


def scientific(value: float) -> str:
    """1e-4, 2.5e-3: the way the paper writes α/β."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    row_label: str
    col_label: str
    config: StylizeConfig
    key: str  # hash of everything that decides the result
    content: Path
    style: Path
    # The cell's file names without extension: r0c1-<key> in a sweep, <content>.<style>-<key> in
    # a batch (which keeps its names when photos are added to it).
    stem: str

    @property
    def label(self) -> str:
        return " | ".join(x for x in (self.row_label, self.col_label) if x)


@dataclass(frozen=True)
class Sweep:
    content: Path | None  # None: a batch's axes give each cell its images
    style: Path | None
    base: StylizeConfig  # the settings every cell shares; axes override some
    rows: Axis | None  # None: one row (a one-axis sweep)
    cols: Axis

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows.values) if self.rows else 1), len(self.cols.values)

    @property
    def axes(self) -> list[Axis]:
        return [self.rows, self.cols] if self.rows else [self.cols]

    @property
    def is_batch(self) -> bool:
        return self.cols.kind is AxisKind.STYLE


def make_sweep(content: Path, style: Path, base: StylizeConfig, axes: list[Axis]) -> Sweep:
    """One or two axes of two or more values; an axis of one value fixes that setting in `base`.

    Each axis kind at most once; rows then columns in AXIS_ORDER.
    """
    kinds = [a.kind for a in axes]
    if {AxisKind.STYLE_SIZE, AxisKind.STYLE_SCALE} <= set(kinds):
        raise NstError("`style_size` and `style_scale` set the same thing; give one")
    if len(set(kinds)) != len(kinds):
        raise NstError("each axis can be given once")
    varying = []
    for axis in axes:
        if len(axis.values) == 1:  # one value: a fixed setting, not an axis
            base = apply_axis(base, axis.kind, axis.values[0])
        else:
            varying.append(axis)
    if not varying:
        raise NstError(
            "a sweep needs an axis: give `content_layer`, `style_layers`, `ratio`, `style_size` "
            "or `style_scale` two or more values"
        )
    if len(varying) > 2:
        titles = ", ".join(a.title for a in varying)
        raise NstError(f"a sweep has one or two axes, not {len(varying)} ({titles}); fix the others")
    varying.sort(key=lambda a: AXIS_ORDER.index(a.kind))
    return Sweep(content, style, base, varying[0] if len(varying) == 2 else None, varying[-1])


def image_labels(paths: list[Path]) -> tuple[str, ...]:
    """Each image's file name, or its path as given where two names are the same."""
    names = Counter(path.name for path in paths)
    return tuple(path.name if names[path.name] == 1 else str(path) for path in paths)


def make_batch(contents: list[Path], styles: list[Path], base: StylizeConfig) -> Sweep:
    """Every content image with every style image: content images down the side, styles across.

    Both axes stay, even with one value, so that a batch's folder looks the same however many
    images it has.
    """
    for kind, paths in ((AxisKind.CONTENT, contents), (AxisKind.STYLE, styles)):
        if not paths:
            raise NstError(f"no {kind.value} image given")
        seen: set[Path] = set()
        for path in paths:
            if path.resolve() in seen:
                raise NstError(f"{path}: given twice as a {kind.value} image")
            seen.add(path.resolve())
    rows = Axis(AxisKind.CONTENT, tuple(contents), image_labels(contents))
    cols = Axis(AxisKind.STYLE, tuple(styles), image_labels(styles))
    return Sweep(None, None, base, rows, cols)


def apply_axis(config: StylizeConfig, kind: AxisKind, value) -> StylizeConfig:
    """`config` with one axis value set (a batch's images are not settings: it stays)."""
    if kind in (AxisKind.CONTENT, AxisKind.STYLE):
        return config
    loss = config.loss
    if kind is AxisKind.CONTENT_LAYER:
        return dataclasses.replace(config, loss=dataclasses.replace(loss, content_layers={value: 1.0}))
    if kind is AxisKind.STYLE_LAYERS:
        # Equal weights summing to one, as the paper's w_l = 1/5 for its five layers.
        layers = {layer: 1.0 / len(value) for layer in value}
        return dataclasses.replace(config, loss=dataclasses.replace(loss, style_layers=layers))
    if kind is AxisKind.RATIO:
        # α stays; β follows the ratio, so the content term keeps its scale across the row.
        weight = loss.content_weight / value
        return dataclasses.replace(config, loss=dataclasses.replace(loss, style_weight=weight))
    if kind is AxisKind.STYLE_SIZE:
        # The style image's longest side in pixels when the output is at `size`.
        return dataclasses.replace(config, style_scale=value / config.size)
    return dataclasses.replace(config, style_scale=float(value))


def cell_key(config: StylizeConfig, model_sha256: str, content_sha256: str, style_sha256: str) -> str:
    """What decides a cell's image, hashed: a re-run finds a cell done by its key."""
    settings = plain(config)
    for machine_only in ("model", "device", "threads"):  # where and how fast, not what
        settings.pop(machine_only)
    blob = json.dumps(
        {"config": settings, "model": model_sha256, "content": content_sha256, "style": style_sha256},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def cells(sweep: Sweep, model_sha256: str) -> list[Cell]:
    """Every cell of the grid, row by row."""
    hashes: dict[Path, str] = {}

    def sha(path: Path) -> str:
        if path not in hashes:
            try:
                hashes[path] = sha256_file(path)
            except OSError as exc:
                raise NstError(f"{path}: cannot read ({exc.strerror})") from None
        return hashes[path]

    rows = sweep.rows.values if sweep.rows else (None,)
    result = []
    for r, row_value in enumerate(rows):
        for c, col_value in enumerate(sweep.cols.values):
            config, images = sweep.base, {AxisKind.CONTENT: sweep.content, AxisKind.STYLE: sweep.style}
            for axis, value in ((sweep.rows, row_value), (sweep.cols, col_value)):
                if axis is not None:
                    config = apply_axis(config, axis.kind, value)
                    if axis.kind in images:  # a batch's image
                        images[axis.kind] = value
            content, style = images[AxisKind.CONTENT], images[AxisKind.STYLE]
            key = cell_key(config, model_sha256, sha(content), sha(style))
            if sweep.is_batch:
                stem = f"{Path(content).stem}.{Path(style).stem}-{key}"
            else:
                stem = f"r{r}c{c}-{key}"
            row_label = sweep.rows.labels[r] if sweep.rows else ""
            result.append(Cell(r, c, row_label, sweep.cols.labels[c], config, key, content, style, stem))
    return result
