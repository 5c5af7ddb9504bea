"""Where nst-ort keeps what it downloads and builds."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$NST_ORT_CACHE, else $XDG_CACHE_HOME/nst-ort, else ~/.cache/nst-ort."""
    if os.environ.get("NST_ORT_CACHE"):
        return Path(os.environ["NST_ORT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nst-ort"


def default_model_path() -> Path:
    """The model `nst-ort export` writes without -o and `nst-ort stylize` reads without --model."""
    return cache_dir() / "models" / "default.onnx"


def artifacts_dir() -> Path:
    return cache_dir() / "artifacts"
