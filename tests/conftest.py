"""Shared fixtures: one tiny random-weight export per test session, a private cache, synthetic
images, and the one way to run the command line (`cli`, in this process; `run_process` where a
real process matters: signals, a missing package, the exit code of the script itself)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests import requires

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Every test writes its cache (models, artifacts, weights) under a session tmp folder."""
    cache = tmp_path_factory.mktemp("cache")
    os.environ["NST_ORT_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random-weight VGG-16 export (avg pooling) with the default layers.

    $NST_ORT_TEST_MODEL names that export made beforehand (`nst-ort export --weights random -o
    PATH`), for environments without torch, such as Python 3.13's CI step; without either, the
    tests that use it skip.
    """
    if os.environ.get("NST_ORT_TEST_MODEL"):
        return Path(os.environ["NST_ORT_TEST_MODEL"])
    if importlib.util.find_spec("torch") is None:
        pytest.skip(
            "no test model: torch (the export extra) exports one, or NST_ORT_TEST_MODEL names one "
            "made elsewhere with `nst-ort export --weights random -o PATH`"
        )
    from export.exporter import export_model
    from export.weights import random_weights
    from nst_ort.contract import Arch, ExportSpec

    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    export_model(path, ExportSpec(), random_weights(Arch.VGG16, seed=0))
    return path


def _pattern(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, structured RGB image: gradients and a few blobs, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 7.0)], axis=2)
    for _ in range(3):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, 20)
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))[..., None]
        image = image * (1 - blob) + blob * rng.uniform(0, 1, 3).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def write_image(path: Path, height: int = 64, width: int = 80, seed: int = 0) -> Path:
    """A synthetic PNG (or other format by extension) at `path`."""
    from PIL import Image

    pixels = (_pattern(height, width, seed) * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def make_image(tmp_path):
    """Write a synthetic PNG (or other format by extension) under tmp_path and return its path."""

    def make(name: str = "image.png", height: int = 64, width: int = 80, seed: int = 0) -> Path:
        return write_image(tmp_path / name, height, width, seed)

    return make


@pytest.fixture
def shared_images() -> Path:
    if not SHARED_IMAGES.is_dir():
        pytest.skip("../shared/images is not present")
    return SHARED_IMAGES


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one line a failed command prints, checked to be one line starting `error: `."""
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        return lines[0]


def run_cli(*args) -> CliResult:
    """Run `nst-ort ARGS…` in this process, through main() as the script does (its error lines
    and exit codes included); stdout and stderr are captured apart, signal handlers restored."""
    from nst_ort.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main([str(arg) for arg in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def cli():
    """run_cli, for a test."""
    return run_cli


@pytest.fixture
def cli_process():
    """Run `nst-ort ARGS…` in a fresh Python process; `hide` names top-level packages that the
    process must find missing, as where they were never installed."""

    def run(*args, hide: tuple[str, ...] = (), **kwargs) -> subprocess.CompletedProcess:
        prelude = "".join(f"import sys; sys.modules[{name!r}] = None\n" for name in hide)
        code = prelude + "from nst_ort.cli import main; main()"
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, **kwargs
        )

    return run


@pytest.fixture
def cli_popen():
    """Start `nst-ort ARGS…` in a fresh process, for tests that signal it."""

    def start(*args) -> subprocess.Popen:
        code = "from nst_ort.cli import main; main()"
        command = [sys.executable, "-c", code, *map(str, args)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    return start


# --- Ray ----------------------------------------------------------------------------------------

RAY_OBJECT_STORE = 200 * 2**20  # bytes per node: the model (~60 MB) and a few images


@pytest.fixture(scope="session")
def ray_env(private_cache):
    """The environment of every Ray cluster and driver the tests start: token authentication
    with a token that lives in the environment only (Ray would otherwise write
    ~/.ray/auth_token), no usage statistics, no address inherited from the shell."""
    import secrets

    if importlib.util.find_spec("ray") is None:
        pytest.skip(requires.RAY)
    env = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ADDRESS": None,
    }
    saved = {name: os.environ.get(name) for name in env}
    set_environment(env)  # before Ray is imported: it reads the authentication mode once
    yield {name: value for name, value in env.items() if value is not None}
    set_environment(saved)


def set_environment(values: dict[str, str | None]) -> None:
    """Set these variables; None removes one."""
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def ray_local(ray_env, tmp_path_factory):
    """This test process connected to a new local Ray of 2 CPUs, shared by the tests that need
    one (it takes seconds to start) and shut down after the last; its GCS address."""
    import ray

    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths live under it
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=RAY_OBJECT_STORE,
        log_to_driver=False,
        logging_level="warning",
        _temp_dir=str(temp),
    )
    yield context.address_info["gcs_address"]
    # Ray's processes among this one's children (not, say, multiprocessing's resource tracker).
    started = {
        pid: c for pid, c in descendants([os.getpid()]).items() if "/ray/" in c or c.startswith("ray::")
    }
    ray.shutdown()
    assert_stopped(started)


def assert_stopped(processes: dict[int, str], seconds: float = 30) -> None:
    """Every one of `processes` ends within `seconds`: a test leaves no Ray process behind."""
    deadline = time.monotonic() + seconds
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive(processes) == {}, "processes left running"


def children() -> dict[int, list[int]]:
    """Every process's children, from /proc (none where there is no /proc)."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        try:
            stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
        except OSError:
            continue
        if stat:
            parent = int(stat.rpartition(")")[2].split()[1])  # the field after the state
            found.setdefault(parent, []).append(int(entry.name))
    return found


def descendants(roots: list[int]) -> dict[int, str]:
    """The live processes below `roots`: pid -> command line."""
    tree, found, todo = children(), {}, list(roots)
    while todo:
        for child in tree.get(todo.pop(), []):
            command = process(child)
            if command is not None:
                found[child] = command
                todo.append(child)
    return found


def process(pid: int) -> str | None:
    """A live process's command line (Ray's workers show their task there); None when gone."""
    try:
        command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None
    return None if state == "Z" else command.decode(errors="replace").strip()


def alive(processes: dict[int, str]) -> dict[int, str]:
    """Those of `processes` still running (the same pid and command line)."""
    return {pid: command for pid, command in processes.items() if process(pid) == command}
