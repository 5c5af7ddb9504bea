"""The run report: resolved config, model, device, versions, per-iteration losses, timings."""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from enum import Enum
from importlib import metadata
from pathlib import Path

from nst_ort.config import Status
from nst_ort.files import write_text
from nst_ort.loop import StepRecord


def plain(value):
    """Dataclasses, enums and paths as JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in (
        "nst-ort",
        "onnxruntime-training-cpu",
        "onnxruntime-training",
        "onnxruntime-gpu",
        "onnxruntime",
        "onnxruntime-openvino",
        "openvino",
        "onnx",
        "numpy",
        "scipy",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def record_dict(record: StepRecord, wall_start: float) -> dict:
    return {
        "step": record.step,
        "evaluations": record.evaluations,
        "elapsed": round(record.elapsed, 6),
        "time": round(wall_start + record.elapsed, 3),
        **{k: v for k, v in record.terms.items()},
    }


class Report:
    """Accumulates what a run did; `to_dict()` is the JSON written by --report."""

    def __init__(self, config, model_info, device: str, inputs: dict, backend: str | None = None):
        self.started = time.time()
        self.data: dict = {
            "status": Status.RUNNING,
            "config": plain(config),
            "inputs": plain(inputs),
            "model": model_info.as_dict(),
            "device": device,
            # The backend that ran: config.backend may be auto (backends.resolve).
            "backend": backend or config.backend,
            "versions": versions(),
            "passes": [],
            "iterations": [],
        }

    def add_records(self, records: list[StepRecord], wall_start: float) -> None:
        self.data["iterations"].extend(record_dict(r, wall_start) for r in records)

    def add_pass(self, info, evaluations: int) -> None:
        self.data["passes"].append({**plain(info), "evaluations": evaluations})

    def continue_from(self, previous: dict) -> None:
        """Put an interrupted run's iterations and passes before this run's (resume)."""
        self.data["resumed_from_step"] = previous["iterations"][-1]["step"] if previous["iterations"] else 0
        self.data["iterations"] = previous["iterations"] + self.data["iterations"]
        self.data["passes"] = previous["passes"] + self.data["passes"]

    def finish(self, status: Status, message: str, output: Path | None, report: Path | None = None) -> dict:
        self.data.update(
            status=Status(status),
            message=message,
            output=str(output) if output else None,
            report=str(report) if report else None,
            total_seconds=round(time.time() - self.started, 3),
            evaluations=sum(p["evaluations"] for p in self.data["passes"]),
        )
        if self.data["iterations"]:
            last = self.data["iterations"][-1]
            self.data["final"] = {k: v for k, v in last.items() if k.startswith("loss")}
        return self.data

    def write(self, path: Path) -> None:
        write_text(path, json.dumps(self.data, indent=2) + "\n")
