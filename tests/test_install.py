"""The README's install commands against pyproject.toml's extras: on every Python and platform,
each installs exactly one ONNX Runtime (they all install the module `onnxruntime`, and two in one
environment overwrite each other's files), the training build wherever its wheels exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+ (tomllib)")
from packaging.requirements import Requirement  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
# Every distribution that installs the module `onnxruntime`.
RUNTIMES = {
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-training",
    "onnxruntime-training-cpu",
    "onnxruntime-openvino",
    "onnxruntime-directml",
}
PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14", "3.15")
# name -> (platform_system, sys_platform, platform_machine)
PLATFORMS = {
    "linux-x86_64": ("Linux", "linux", "x86_64"),
    "linux-aarch64": ("Linux", "linux", "aarch64"),
    "macos-arm64": ("Darwin", "darwin", "arm64"),
    "windows-amd64": ("Windows", "win32", "AMD64"),
}


def readme_extras() -> list[tuple[str, ...]]:
    """The extras of every `pip install -e ".[…]"` the README shows."""
    found = re.findall(r'pip install -e "\.\[([\w,]+)\]"', (ROOT / "README.md").read_text())
    return sorted({tuple(group.split(",")) for group in found})


def installed(extras: tuple[str, ...], python: str, platform: str) -> list[str]:
    """The distributions these extras install there, by canonical name."""
    system, sys_platform, machine = PLATFORMS[platform]
    environment = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "platform_system": system,
        "sys_platform": sys_platform,
        "platform_machine": machine,
        "os_name": "nt" if system == "Windows" else "posix",
    }
    names = []
    for extra in extras:
        for requirement in map(Requirement, EXTRAS[extra]):
            if requirement.marker is None or requirement.marker.evaluate(environment):
                names.append(canonicalize_name(requirement.name))
    return names


def test_the_readme_shows_the_install_commands():
    assert ("cpu", "export", "dev") in readme_extras()
    assert any("cuda" in extras for extras in readme_extras())


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("python", PYTHONS)
def test_each_readme_command_installs_one_onnxruntime(python, platform):
    for extras in readme_extras():
        runtimes = [name for name in installed(extras, python, platform) if name in RUNTIMES]
        assert len(runtimes) == 1, f".[{','.join(extras)}] on Python {python}, {platform}: {runtimes}"


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("python", PYTHONS)
def test_the_training_build_where_it_has_wheels(python, platform):
    """onnxruntime-training 1.19.2, the last release: the CPU build for Python <= 3.12, the GPU
    build (CUDA 11.8, with the nvidia-*-cu11 libraries) for Python <= 3.11 on Linux x86-64."""
    old = tuple(map(int, python.split("."))) <= (3, 12)
    cpu = [name for name in installed(("cpu",), python, platform) if name != "openvino"]
    assert cpu == (["onnxruntime-training-cpu"] if old else ["onnxruntime"])

    gpu_wheels = platform == "linux-x86_64" and tuple(map(int, python.split("."))) <= (3, 11)
    cuda = installed(("cuda",), python, platform)
    cu11 = [name for name in cuda if name.endswith("-cu11")]
    if gpu_wheels:
        assert [name for name in cuda if name in RUNTIMES] == ["onnxruntime-training"]
        assert len(cu11) == 5
    else:
        assert cuda == ["onnxruntime-gpu"] and cu11 == []


def test_the_gpu_build_brings_its_cuda_libraries():
    (gpu,) = [Requirement(r) for r in EXTRAS["cuda"] if Requirement(r).name == "onnxruntime-gpu"]
    assert gpu.extras == {"cuda", "cudnn"}


@pytest.mark.parametrize("platform", list(PLATFORMS))
@pytest.mark.parametrize("python", PYTHONS)
def test_openvino_where_bf16_can_pay(python, platform):
    """The cpu extra brings OpenVINO Runtime (the ov-bf16 backend, `--backend auto`'s bf16) on
    Linux x86-64, where its wheels are (Python 3.10-3.14) and the CPU's bf16 can be read; the
    cuda and ort extras never, nor any elsewhere. It is no ONNX Runtime (it installs no module
    `onnxruntime`), so the one-runtime rule above holds with it."""
    wheels = platform == "linux-x86_64" and tuple(map(int, python.split("."))) <= (3, 14)
    assert ("openvino" in installed(("cpu",), python, platform)) is wheels
    assert "openvino" not in installed(("cuda",), python, platform) + installed(("ort",), python, platform)
    assert "openvino" not in RUNTIMES
