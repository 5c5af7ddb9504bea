"""What a test may need beyond the runtime, each with the reason it skips without it.

onnxruntime-training has wheels for Python <= 3.12 only (the cpu extra installs it there, plain
onnxruntime elsewhere); torch comes with the export extra, which the runtime never needs; Ray with
the ray extra, which only sweeps and batches on a cluster need; PyAV and OpenCV with the video
extra, which only `nst-ort video` needs (and its tests ffprobe, from Debian's ffmpeg). A test that
needs none of them runs everywhere: the model it uses (`tiny_model`) is exported with torch or,
without it, named by NST_ORT_TEST_MODEL (conftest.py).
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from nst_ort.backends.ort import has_training

TRAINING = "needs onnxruntime-training (the cpu extra on Python <= 3.12)"
TORCH = "needs torch (the export extra)"
RAY = "needs Ray (the ray extra)"  # the cluster tests: conftest.py's ray_env
# The ov-bf16 backend's numbers (tests/backends/test_openvino_runtime.py): the cpu extra installs
# openvino on Linux x86-64 only.
OPENVINO = "needs openvino (the cpu extra on Linux x86-64)"
VIDEO = "needs PyAV and OpenCV (the video extra)"
FFPROBE = "needs ffprobe (Debian's ffmpeg package)"  # the check that a real player reads a clip

needs_training = pytest.mark.skipif(not has_training(), reason=TRAINING)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason=TORCH)
needs_video = pytest.mark.skipif(
    importlib.util.find_spec("av") is None or importlib.util.find_spec("cv2") is None, reason=VIDEO
)
needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason=FFPROBE)
# A module that uses torch throughout: torch = pytest.importorskip("torch", reason=TORCH)


def skip_without_training() -> None:
    """For fixtures: skip every test that uses them."""
    if not has_training():
        pytest.skip(TRAINING)
