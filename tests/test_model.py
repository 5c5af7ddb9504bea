"""Reading an export: what it says about itself, and every way it can be wrong, in one line."""

import onnx
import pytest

from nst_ort import contract
from nst_ort.errors import NstError
from nst_ort.model import load_model


def test_newer_format_version_is_refused(tmp_path, tiny_model):
    model = onnx.load(str(tiny_model))
    for prop in model.metadata_props:
        if prop.key == contract.META_FORMAT_VERSION:
            prop.value = "99"
    onnx.save(model, str(tmp_path / "future.onnx"))
    with pytest.raises(
        NstError,
        match=f"model format version 99, this nst-ort reads version {contract.FORMAT_VERSION}; export it",
    ):
        load_model(tmp_path / "future.onnx")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "no such model file; run `nst-ort export` first or pass `model`"),
        (lambda p: (p.mkdir(), p)[1], "is a directory, not a model file"),
        (lambda p: (p.write_bytes(b"not onnx"), p)[1], "not an ONNX model"),
    ],
)
def test_wrong_files_are_one_line(tmp_path, make, message):
    with pytest.raises(NstError, match=message):
        load_model(make(tmp_path / "m.onnx"))
