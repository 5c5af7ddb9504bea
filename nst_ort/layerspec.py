"""The one grammar for layer lists and number lists, as options and study axes write them.

    relu4_2                        one layer (weight 1)
    relu4_2:1,relu5_2:0.5          layers with weights: finite numbers, 0 or more
    all                            every layer available
    relu1_1..relu3_1               a range: the available layers from one to the other, in order
    relu1_1+relu2_1                one set of layers (a study cell's)
    cumulative:relu1_1..relu3_1    growing sets: relu1_1, then relu1_1+relu2_1, … (the paper's Fig. 3)
    1e-5,1e-4 / 256,512            numbers / whole numbers

`available` is the model's layers in network order; `what` names the list in messages ("style",
or a config field in backticks, which the CLI shows as its option). Every error is one line.
"""

from __future__ import annotations

import math

from nst_ort import contract
from nst_ort.errors import NstError

CUMULATIVE = "cumulative:"
# Every layer name any supported network has: a name outside it is a typo, not a missing export.
KNOWN_LAYERS = frozenset(contract.loss_layers(contract.Arch.VGG19))


def _unknown(name: str, available: tuple[str, ...] | list[str], what: str) -> NstError:
    message = f"unknown {what} layer {name!r}; available: {', '.join(available)}"
    if name in KNOWN_LAYERS:
        message += " (not in this export; `nst-ort export` exports every layer of its network)"
    return NstError(message)


def _expand(term: str, available: tuple[str, ...] | list[str], what: str) -> list[str]:
    """`relu1_1..relu3_1` -> the available layers from one to the other; `relu2_1` -> itself."""
    first, dots, last = (part.strip() for part in term.partition(".."))
    for layer in (first, last) if dots else (first,):
        if layer not in available:
            raise _unknown(layer, available, what)
    if not dots:
        return [first]
    i, j = list(available).index(first), list(available).index(last)
    if j < i:
        raise NstError(f"{what} layers: range {first}..{last} runs backwards")
    return list(available[i : j + 1])


def _items(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def layer_weight(text: str, layer: str, what: str) -> float:
    """A layer's weight: a finite number, 0 or more (a negative weight would reward the mismatch)."""
    try:
        weight = float(text)
    except ValueError:
        raise NstError(f"{what} layer weight {text!r} for {layer} is not a number") from None
    if not math.isfinite(weight) or weight < 0:
        raise NstError(f"{what} layer weight {text!r} for {layer} must be a finite number, 0 or more")
    return weight


def weighted_layers(text: str, available: tuple[str, ...] | list[str], what: str) -> dict[str, float]:
    """`relu1_1,relu2_1:0.5`, `all` or ranges, into {layer: weight} in the order given.

    Weights default to 1; a weight after a range applies to each of its layers.
    """
    result: dict[str, float] = {}
    for item in _items(text):
        term, colon, weight_text = item.partition(":")
        term = term.strip()
        layers = list(available) if term == "all" else _expand(term, available, what)
        weight = layer_weight(weight_text, layers[0], what) if colon and weight_text.strip() else 1.0
        result.update(dict.fromkeys(layers, weight))
    if not result:
        raise NstError(f"no {what} layers given")
    return result


def layer_list(text: str, available: tuple[str, ...] | list[str], what: str) -> list[str]:
    """`relu1_1,relu2_1` or ranges such as `relu1_1..relu3_1`: layers without weights, once each."""
    layers: list[str] = []
    for item in _items(text):
        layers += list(available) if item == "all" else _expand(item, available, what)
    if not layers:
        raise NstError(f"no {what} layers given")
    return list(dict.fromkeys(layers))


def layer_sets(
    text: str, available: tuple[str, ...] | list[str], what: str
) -> tuple[list[tuple[str, ...]], bool]:
    """Layer sets, one per study cell, and whether they were asked for as cumulative.

    - `relu1_1,relu2_1` (or the range `relu1_1..relu5_1`): one layer per set;
    - `relu1_1+relu2_1,relu3_1`: `+` joins layers (or ranges) into one set;
    - `cumulative:relu1_1..relu5_1`: relu1_1, then relu1_1 and relu2_1, …
    """
    text = text.strip()
    cumulative = text.startswith(CUMULATIVE)
    if cumulative:
        text = text.removeprefix(CUMULATIVE)
    sets: list[tuple[str, ...]] = []
    for item in _items(text):
        if "+" in item:
            if cumulative:
                raise NstError(f"{what} layers: cumulative: takes layers and ranges, not '+' sets")
            group: list[str] = []
            for term in item.split("+"):
                group += _expand(term, available, what)
            sets.append(tuple(dict.fromkeys(group)))
        else:
            sets += [(layer,) for layer in _expand(item, available, what)]
    if not sets:
        raise NstError(f"no {what} layers given")
    if cumulative:
        flat = [s[0] for s in sets]
        sets = [tuple(flat[: k + 1]) for k in range(len(flat))]
    return sets, cumulative


def numbers(text: str, what: str) -> tuple[float, ...]:
    """`1e-5,2.5e-3` -> (1e-05, 0.0025); empty items are skipped."""
    try:
        return tuple(float(item) for item in _items(text))
    except ValueError:
        raise NstError(f"{what}: expected comma-separated numbers, got '{text}'") from None


def whole_numbers(text: str, what: str) -> tuple[int, ...]:
    """`256,512` -> (256, 512); empty items are skipped."""
    try:
        return tuple(int(item) for item in _items(text))
    except ValueError:
        raise NstError(f"{what}: expected comma-separated whole numbers, got '{text}'") from None


def format_layers(layers: dict[str, float]) -> str:
    """The inverse of weighted_layers: {relu4_2: 1} -> `relu4_2`, {relu1_1: 0.2} -> `relu1_1:0.2`."""
    return ",".join(layer if weight == 1.0 else f"{layer}:{weight:g}" for layer, weight in layers.items())
