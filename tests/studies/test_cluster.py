"""Cells on a Ray cluster: the images of a local run, an engine per worker, a killed worker's cell
run again and written once, Ctrl-C, and the refusals.

Real Ray on this machine: a local cluster that this process is connected to, shared by the tests
(ray_local in conftest.py), and a two-node cluster (`ray start --head` and `ray start --address`)
that one test starts and stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nst_ort.imageio import load_image
from tests.conftest import RAY_OBJECT_STORE, assert_stopped, descendants, run_cli, write_image

# One cell takes a few seconds here: long enough to kill a worker in the middle of one.
SWEEP = ["--size", 64, "--iterations", 20, "--style-layers", "relu1_1,relu2_1", "--ratio", "1e-4,1e-2"]
# The same arithmetic on both sides: one ONNX Runtime thread, whatever the machine's cores.
THREADS = ["--threads", 1]


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory) -> tuple[list, Path]:
    """The 2x2 sweep run here, one cell after another (--jobs 1): its arguments and folder."""
    folder = tmp_path_factory.mktemp("reference")
    content, style = (
        write_image(folder / "c.png", 64, 80, seed=0),
        write_image(folder / "s.png", 64, 64, seed=1),
    )
    args = [content, style, "--model", tiny_model, *SWEEP, *THREADS]
    result = run_cli("sweep", *args, "-o", folder / "local", "--jobs", 1)
    assert result.exit_code == 0, result.stderr
    return args, folder / "local"


def cells_of(folder: Path) -> dict[str, dict]:
    """The cells of a sweep's results.json, by image name."""
    data = json.loads((folder / "results.json").read_text())
    return {Path(cell["image"]).name: cell for cell in data["cells"]}


def reports_of(folder: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((folder / "cells").glob("*.report.json"))]


def assert_same_images(actual: Path, desired: Path) -> None:
    """Four cells done, named alike (the same settings), whose images are within 1/255."""
    actual_cells, desired_cells = cells_of(actual), cells_of(desired)
    assert sorted(actual_cells) == sorted(desired_cells) and len(desired_cells) == 4
    for name in desired_cells:
        assert actual_cells[name]["status"] == "done"
        np.testing.assert_allclose(
            load_image(actual / "cells" / name),
            load_image(desired / "cells" / name),
            rtol=0,
            atol=1 / 255 + 1e-6,
        )


def test_a_sweep_on_ray_has_the_local_runs_images(ray_local, reference, tmp_path, cli, tiny_model):
    args, local = reference
    result = cli("sweep", *args, "-o", tmp_path / "ray", "--ray", "auto")
    assert result.exit_code == 0, result.stderr
    assert "Ray cluster: 1 node, 2 CPUs" in result.stderr
    assert "ran 4 cells, 0 already done" in result.stdout
    assert_same_images(tmp_path / "ray", local)

    reports = reports_of(tmp_path / "ray")
    # The reports name the driver's files, not the workers' copies.
    assert {r["model"]["path"] for r in reports} == {str(tiny_model)}
    assert {r["inputs"]["content"] for r in reports} == {str(args[0])}
    assert {r["output"] for r in reports} == {str(p) for p in (tmp_path / "ray" / "cells").glob("*.png")}
    # Each task reserved one CPU and ran one thread; a worker process that ran several cells
    # built its engine for the first only: it counts 1, 2, … on the same engine.
    assert {r["worker"]["threads"] for r in reports} == {1}
    counts: dict[int, list[int]] = {}
    for report in reports:
        counts.setdefault(report["worker"]["pid"], []).append(report["worker"]["cells"])
    assert all(sorted(c) == list(range(1, len(c) + 1)) for c in counts.values()), counts
    assert max(len(c) for c in counts.values()) > 1, counts  # 4 cells, 2 CPUs: workers are reused

    again = cli("sweep", *args, "-o", tmp_path / "ray", "--ray", "auto")
    assert again.exit_code == 0, again.stderr
    assert "4 of 4 cells already done" in again.stderr and "nothing to do" in again.stdout


def test_a_batch_on_ray_reports_a_bad_photo_and_runs_the_others(
    ray_local, make_image, tmp_path, cli, tiny_model
):
    good, style = make_image("good.png", 48, 64), make_image("style.png", 48, 48, seed=1)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "batch"
    result = cli(
        "batch", good, bad, "--style", style, "-o", out, "--model", tiny_model, "--size", 48,
        "--iterations", 3, "--ray", "auto", "-q",
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.error == (
        "error: 1 of 2 cells failed (see results.csv), the others are done; "
        f"bad.png | style.png: {bad}: not an image Pillow can read"
    )
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [(c["row_label"], c["status"]) for c in cells] == [("good.png", "done"), ("bad.png", "failed")]
    assert (out / cells[0]["image"]).is_file() and cells[1]["image"] is None
    assert sorted(p.name for p in (out / "cells").iterdir() if not p.name.startswith("good.")) == []


def test_a_cell_with_a_non_finite_loss_does_not_stop_the_others(
    ray_local, make_image, tmp_path, cli, tiny_model
):
    out = tmp_path / "sweep"
    result = cli(
        "sweep", make_image("c.png", 48, 64), make_image("s.png", 48, 48, seed=1), "-o", out,
        "--model", tiny_model, "--size", 48, "--iterations", 3, "--ratio", "1e-40,1e-4", "--ray", "auto",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "1e-40: nonfinite: the loss term became inf; try a smaller --lr" in result.stderr
    assert "error: 1 cells stopped on a non-finite loss (see results.csv)" in result.stderr
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert [(c["col_label"], c["status"]) for c in cells] == [("1e-40", "nonfinite"), ("1e-4", "done")]


def test_ray_refuses_what_it_cannot_run(ray_local, make_image, tmp_path, cli, tiny_model):
    base = [
        "batch",
        make_image("c.png"),
        "-s",
        make_image("s.png"),
        "-o",
        tmp_path / "out",
        "--model",
        tiny_model,
    ]
    result = cli(*base, "--ray", "auto", "--threads", 4)
    assert result.exit_code == 2
    assert (
        result.error
        == "error: --threads 4: no node of the Ray cluster has that many CPUs (the largest has 2)"
    )
    init = make_image("init.png")
    result = cli(*base, "--ray", "auto", "--init", init)
    assert result.exit_code == 2
    assert result.error == (
        f"error: --init {init}: an image file does not travel to a Ray cluster; use noise, content or style"
    )
    result = cli(*base, "--ray", "auto", "--jobs", 2)
    assert result.error == "error: --jobs runs cells on this machine; with --ray the cluster's CPUs decide"
    assert not list((tmp_path / "out").glob("cells/*"))


def test_the_tiles_of_a_pass_on_ray_make_the_local_runs_image(
    ray_local, make_image, tmp_path, cli, tiny_model
):
    content, style = make_image("c.png", 72, 96), make_image("s.png", 64, 64, seed=1)
    args = [content, style, "--model", tiny_model, "--size", 96, "--scales", 48, "--tile", 48]
    args += ["--scale-iterations", "4,3", *THREADS]
    local = cli("stylize", *args, "-o", tmp_path / "local.png", "--quiet")
    assert local.exit_code == 0, local.stderr
    report = tmp_path / "ray.json"
    result = cli("stylize", *args, "-o", tmp_path / "ray.png", "--report", report, "--ray", "auto")
    assert result.exit_code == 0, result.stderr
    assert "tiles on the Ray cluster: 1 node, 2 CPUs" in result.stderr
    assert "scale 2/2: 96 px in 6 tiles" in result.stderr
    np.testing.assert_array_equal(load_image(tmp_path / "ray.png"), load_image(tmp_path / "local.png"))
    tiles = json.loads(report.read_text())["passes"][1]["tiles"]
    assert [(t["index"], t["evaluations"]) for t in tiles] == [(i, 3) for i in range(6)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.png",
        "local.png",
        "ray.json",
        "ray.png",
        "s.png",
    ]


def test_ctrl_c_on_the_driver_keeps_the_written_cells(ray_local, reference, tmp_path, cli_popen, cli):
    args, _ = reference
    out = tmp_path / "ray"
    driver = cli_popen("sweep", *args, "-o", out, "--ray", ray_local)
    deadline = time.monotonic() + 240
    while not list(out.glob("cells/*.report.json")) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGINT)
    stdout, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 130, stderr
    written = {p.name for p in out.glob("cells/*.json") if not p.name.endswith(".report.json")}
    assert 1 <= len(written) < 4, stderr
    assert f"interrupted after {len(written)} of 4 cells" in stderr

    resumed = cli("sweep", *args, "-o", out, "--ray", "auto")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"{len(written)} of 4 cells already done" in resumed.stderr
    assert f"ran {4 - len(written)} cells, {len(written)} already done" in resumed.stdout


# --- a two-node cluster with a worker killed in the middle of a cell ----------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def two_nodes(temp: Path, env: dict):
    """`ray start --head` and `ray start --address` with one CPU each, blocking in processes of
    this test; yields (address, [the two processes]). On exit both stop, and with them every
    process they started (checked)."""
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    common = [
        "--block",
        "--num-cpus=1",
        f"--object-store-memory={RAY_OBJECT_STORE}",
        "--node-ip-address=127.0.0.1",
    ]
    common += ["--disable-usage-stats"]
    head = ["--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"]
    head += [f"--ray-client-server-port={free_port()}"]  # not Ray Client's default 10001
    nodes = []
    try:
        for args in (head, [f"--address=127.0.0.1:{port}"]):
            # Ports that Ray would otherwise take at fixed numbers, the same for both nodes.
            args = [*common, *args, f"--dashboard-agent-listen-port={free_port()}"]
            with open(temp / f"node{len(nodes)}.log", "w") as log:
                nodes.append(subprocess.Popen([ray, "start", *args], env=env, stdout=log, stderr=log))
            if len(nodes) == 1:
                wait_for_port(port, nodes[0], temp / "node0.log")
        wait_for_nodes(f"127.0.0.1:{port}", 2, env)
        yield f"127.0.0.1:{port}", nodes
    finally:
        started = descendants([node.pid for node in nodes])
        for node in reversed(nodes):
            node.terminate()  # --block: the node's Ray processes stop with it
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        assert_stopped(started)


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    pytest.fail(f"the Ray head did not open port {port}: {log.read_text()}")


def wait_for_nodes(address: str, count: int, env: dict) -> None:
    code = (
        "import sys, time, ray\n"
        "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='error')\n"
        "while sum(n['Alive'] for n in ray.nodes()) < int(sys.argv[2]): time.sleep(0.2)\n"
    )
    subprocess.run([sys.executable, "-c", code, address, str(count)], env=env, check=True, timeout=120)


def test_a_worker_killed_in_a_cell_is_retried_and_the_cell_written_once(
    ray_env, reference, tmp_path_factory, tmp_path, cli_popen
):
    if not Path("/proc/self/stat").is_file():
        pytest.skip("finding Ray's worker processes reads /proc")
    args, local = reference
    out = tmp_path / "ray"
    temp = tmp_path_factory.mktemp("nodes")  # short: Ray's socket paths live under it
    with two_nodes(temp, {**os.environ, **ray_env}) as (address, nodes):
        start = time.monotonic()
        driver = cli_popen("sweep", *args, "-o", out, "--ray", address)
        killed = None
        while killed is None and driver.poll() is None and time.monotonic() - start < 240:
            running = {
                pid: command
                for pid, command in descendants([node.pid for node in nodes]).items()
                if command.startswith("ray::nst-ort ")
            }
            if running:
                killed = min(running.items())
                os.kill(killed[0], signal.SIGKILL)  # in the middle of its cell
            time.sleep(0.05)
        stdout, stderr = driver.communicate(timeout=300)
        seconds = time.monotonic() - start
    assert killed is not None, stderr
    assert driver.returncode == 0, stderr
    print(f"2x2 sweep on two nodes, one worker killed: {seconds:.1f} s")

    # Every cell done, each computed by a worker that lived, none by the killed one.
    assert_same_images(out, local)
    reports = reports_of(out)
    assert killed[0] not in {r["worker"]["pid"] for r in reports}
    assert len({r["worker"]["node"] for r in reports}) == 2  # both nodes ran cells
    # The driver wrote each cell once: one record each, one line each, four cells run.
    records = [p for p in out.glob("cells/*.json") if not p.name.endswith(".report.json")]
    assert len(records) == 4
    assert "ran 4 cells, 0 already done" in stdout
    labels = Counter(line.split(":")[0] for line in stderr.splitlines() if ": done in " in line)
    assert labels == Counter(
        {label: 1 for label in ("relu1_1 | 1e-4", "relu1_1 | 1e-2", "relu2_1 | 1e-4", "relu2_1 | 1e-2")}
    )
    stem = killed[1].removeprefix("ray::nst-ort ")
    assert cells_of(out)[f"{stem}.png"]["status"] == "done"  # the killed cell, run again


# --- what needs no cluster ------------------------------------------------------------------------


def test_without_ray_installed_a_ray_run_says_what_to_install(make_image, tmp_path, cli_process, tiny_model):
    result = cli_process(
        "sweep", make_image("c.png"), make_image("s.png"), "-o", tmp_path / "out", "--model", tiny_model,
        "--ratio", "1e-4,1e-2", "--ray", "auto", hide=("ray",),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == "error: Ray is not installed; pip install 'nst-ort[ray]'\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:{port}", "no Ray cluster answers at 127.0.0.1:{port} (Connection refused)"),
        ("ray://127.0.0.1:{port}", "no Ray cluster answers at ray://127.0.0.1:{port} (Connection refused)"),
        ("head", "Ray address head: not auto, HOST:PORT or ray://HOST:PORT"),
    ],
)
def test_an_address_where_no_cluster_answers_is_one_line(
    ray_env, make_image, tmp_path, cli_process, tiny_model, address, message
):
    port = free_port()  # nothing listens there
    start = time.monotonic()
    result = cli_process(
        "batch", make_image("c.png"), "-s", make_image("s.png"), "-o", tmp_path / "out",
        "--model", tiny_model, "--ray", address.format(port=port),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"error: {message.format(port=port)}\n"
    assert time.monotonic() - start < 60
    assert not (tmp_path / "out").exists()


def test_ray_is_only_imported_for_a_cluster():
    code = "import sys, nst_ort.cli, nst_ort.studies.cluster; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_task_that_raised_on_a_worker_is_one_line():
    """cluster.task_error, for cells, tiles and video chunks alike: the worker's own NstError as
    it is, anything else under the task's label with its first line."""
    from nst_ort.errors import FAILURE, NstError
    from nst_ort.studies.cluster import task_error

    class Raised(Exception):  # what Ray raises on the driver: the worker's exception as `cause`
        def __init__(self, cause):
            self.cause = cause

    actual = task_error(Raised(NstError("onnxruntime is missing", 3)), "cell a")
    assert (str(actual), actual.exit_code) == ("on the Ray cluster: onnxruntime is missing", 3)
    actual = task_error(Raised(ValueError("bad shape\nmore")), "tile 2")
    assert (str(actual), actual.exit_code) == ("tile 2: ValueError: bad shape", FAILURE)
