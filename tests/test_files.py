"""Atomic writes: the old file or the whole new one, with the permissions a plain open() gives."""

import os

import numpy as np
import pytest

from nst_ort.files import atomic_path
from nst_ort.imageio import save_image


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full, say")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_new_files_get_the_usual_permissions(tmp_path):
    save_image(tmp_path / "o.png", np.zeros((16, 16, 3), np.float32))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "o.png").stat().st_mode & 0o777 == 0o666 & ~umask
