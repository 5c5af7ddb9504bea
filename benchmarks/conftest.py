"""Options, parametrisation and shared fixtures of the benchmark suite.

`pytest benchmarks/` times 128 and 256 px; `--bench-512` adds 512 px (marked `large`);
`--bench-quick` shrinks everything to 32 px and one round, for CI with `--benchmark-disable`.
The `--ttp-*` options belong to test_time_to_picture.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.backends import BACKENDS, REFERENCE
from benchmarks.workload import Case, pooling_suffix, write_inputs
from nst_ort.contract import Arch, Pooling


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...]
    archs: tuple[Arch, ...]
    threads: int
    rounds: int  # timed rounds per evaluation benchmark (and per backend, side by side)
    warmup: int  # untimed rounds before them
    loop_steps: int  # optimiser steps per timed round of the loop benchmarks
    loop_rounds: int
    ttq_evaluations: int  # torch's evaluations in the time-to-quality race; its loss then is the target
    ttq_size: int
    ttq_limit: float  # the others stop at this many times torch's time to the target
    quick: bool


def pytest_addoption(parser):
    group = parser.getgroup("nst-ort benchmarks")
    group.addoption("--bench-sizes", default="128,256", help="image sizes in pixels (default 128,256)")
    group.addoption("--bench-512", action="store_true", help="add 512 px cases (marked 'large')")
    group.addoption("--bench-archs", default="vgg19,vgg16", help="architectures (default vgg19,vgg16)")
    group.addoption(
        "--bench-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for every backend: torch.set_num_threads and ORT intra_op_num_threads "
        "(default: all cores)",
    )
    group.addoption("--bench-rounds", type=int, default=5, help="timed rounds per evaluation (default 5)")
    group.addoption(
        "--ttq-evaluations",
        type=int,
        default=300,
        help="time to quality: torch's evaluations, whose loss the others race to (default 300)",
    )
    group.addoption("--ttq-size", type=int, default=256, help="time-to-quality image size (default 256)")
    group.addoption(
        "--ttq-limit", type=float, default=1.5, help="time to quality: give up at this × torch's time (1.5)"
    )
    group.addoption(
        "--ttp-size",
        type=int,
        default=None,
        help="time to a finished picture: run it at this size (--bench-512: 512; else skipped)",
    )
    group.addoption(
        "--ttp-run",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="time to a finished picture: one more run, StylizeConfig() with these fields, e.g. "
        "short='{\"scale_iterations\": [150, 75, 75, 75, 75]}' (repeatable)",
    )
    group.addoption(
        "--ttp-backends",
        default="",
        help="time to a finished picture: the new default once more on each of these backends",
    )
    group.addoption(
        "--ttp-output",
        type=Path,
        default=None,
        help="time to a finished picture: folder for its pictures and tables (default: a temporary one)",
    )
    group.addoption(
        "--bench-video",
        action="store_true",
        help="the video comparison, temporal against independent frames (benchmarks/test_video.py; hours)",
    )
    group.addoption(
        "--bench-quick",
        action="store_true",
        help="smoke mode for CI: 32 px, one round, a 5-evaluation race; pair with --benchmark-disable",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "large: 512 px cases, collected only with --bench-512")


def settings_of(config) -> Settings:
    opt = config.getoption
    archs = tuple(Arch(a.strip()) for a in opt("--bench-archs").split(",") if a.strip())
    if opt("--bench-quick"):
        return Settings((32,), archs, opt("--bench-threads"), 1, 0, 3, 1, 5, 32, 2.0, True)
    sizes = tuple(int(s) for s in opt("--bench-sizes").split(",") if s.strip())
    if opt("--bench-512") and 512 not in sizes:
        sizes += (512,)
    return Settings(
        sizes,
        archs,
        opt("--bench-threads"),
        opt("--bench-rounds"),
        1,
        5,
        3,
        opt("--ttq-evaluations"),
        opt("--ttq-size"),
        opt("--ttq-limit"),
        False,
    )


def pytest_generate_tests(metafunc):
    settings = settings_of(metafunc.config)
    if "arch" in metafunc.fixturenames:
        metafunc.parametrize("arch", [pytest.param(a, id=a.value) for a in settings.archs])
    if "size" in metafunc.fixturenames:
        params = [
            pytest.param(s, id=f"{s}px", marks=[pytest.mark.large] if s >= 512 else [])
            for s in settings.sizes
        ]
        metafunc.parametrize("size", params)
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", list(BACKENDS))
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", ["cpu", "cuda"])


@pytest.fixture(scope="session")
def settings(pytestconfig) -> Settings:
    return settings_of(pytestconfig)


class Cases:
    """Exports each architecture once (random weights) and writes each size's inputs once."""

    def __init__(self, root: Path, threads: int):
        self.root = root
        self.threads = threads
        self._models: dict[tuple[Arch, Pooling], Path] = {}
        self._cases: dict[tuple[Arch, int, Pooling], Case] = {}

    def model(self, arch: Arch, pooling: Pooling = Pooling.AVG) -> Path:
        key = (Arch(arch), Pooling(pooling))
        if key not in self._models:
            from benchmarks.workload import WEIGHTS_SEED
            from export.exporter import ExportSpec, export_model
            from export.weights import random_weights

            path = self.root / "models" / f"{key[0].value}{pooling_suffix(key[1])}-random.onnx"
            weights = random_weights(key[0], seed=WEIGHTS_SEED)
            export_model(path, ExportSpec(arch=key[0], pooling=key[1]), weights)
            self._models[key] = path
        return self._models[key]

    def get(self, arch: Arch, size: int, pooling: Pooling = Pooling.AVG) -> Case:
        key = (Arch(arch), size, Pooling(pooling))
        if key not in self._cases:
            model = self.model(key[0], key[2])
            inputs = self.root / "inputs" / f"{key[0].value}-{size}{pooling_suffix(key[2])}.npz"
            inputs.parent.mkdir(parents=True, exist_ok=True)
            write_inputs(model, size, inputs)
            cache = self.root / "artifacts"
            self._cases[key] = Case(key[0], size, self.threads, model, cache, inputs, key[2])
        return self._cases[key]


@pytest.fixture(scope="session")
def cases(tmp_path_factory, settings) -> Cases:
    return Cases(tmp_path_factory.mktemp("bench"), settings.threads)


@pytest.fixture
def case(cases, arch, size) -> Case:
    return cases.get(arch, size)


@pytest.fixture(scope="session")
def reference():
    """torch-cpu's (terms, gradient) at a case's start image, computed once per case."""
    results: dict[str, tuple[dict[str, float], object]] = {}

    def get(case: Case):
        if case.id not in results:
            backend = BACKENDS[REFERENCE]
            reason = backend.unavailable()
            if reason:
                return None
            image, _ = case.load_inputs()
            results[case.id] = backend.make(case).value_and_grad(image)
        return results[case.id]

    return get
