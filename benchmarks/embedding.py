"""Per-step time of the bundle drivers on one ort-graph bundle, side by side.

    python -m benchmarks.embedding BUNDLE [--rounds 5] [--steps 10] [--threads 0] [--page]
    python -m benchmarks.embedding --write DIR --size 96 [--model M.onnx] ...   # write the bundle first
    python -m benchmarks.embedding BUNDLE --python VENV/bin/python   # the driver on another onnxruntime

Each round runs the Python reference driver (nst_ort/bundle/driver.py, in this Python's ONNX
Runtime or --python's), the Node driver (examples/node, onnxruntime-node) and, with --page, the page
(examples/web) in headless Chromium (onnxruntime-web, WebAssembly), in turns, so that a shared
machine's load falls on all of them alike. A driver's time per step is the median over every
step of every round but each run's first (session warm-up); each driver clocks its own steps
(model run and Adam update), so process start and session creation are left out. The first
round also compares the images after --steps steps (Node and page against Python).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYTHON_DRIVER = ROOT / "nst_ort" / "bundle" / "driver.py"
NODE_DRIVER = ROOT / "examples" / "node" / "run-bundle.mjs"
WEB = ROOT / "examples" / "web"
NST_ORT = [sys.executable, "-c", "from nst_ort.cli import main; main()"]
STEP_LINE = re.compile(r"^step (\d+)/\d+ loss \S+ \((\d+(?:\.\d+)?) ms\)$", re.MULTILINE)


def _steps(stderr: str) -> list[float]:
    return [float(ms) for _, ms in STEP_LINE.findall(stderr)]


def run_cli(command: list[str]) -> list[float]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return _steps(done.stderr)


def write_bundle(directory: Path, size: int, model: Path | None) -> None:
    """A bundle of the tests' kind: synthetic photo and painting, random-weight VGG-16 export."""
    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="nst-ort-embedding."))
    if model is None:
        model = work / "model.onnx"
        subprocess.run([*NST_ORT, "export", "--weights", "random", "-o", str(model)], check=True)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    content = np.stack([x / size, y / size, 0.5 + 0.5 * np.sin((x + y) / 7)], axis=2)
    style = np.stack([0.5 + 0.5 * np.sin(x / 3), 0.5 + 0.5 * np.cos(y / 4), (x * y) % 17 / 17], axis=2)
    paths = []
    for name, image in (("content.png", content), ("style.png", style)):
        paths.append(work / name)
        Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(paths[-1])
    command = [*NST_ORT, "bundle", *map(str, paths), "--model", str(model)]
    command += ["--size", str(size), "--init", "content", "-o", str(directory)]
    subprocess.run(command, check=True)


def _package_version(folder: Path, package: str) -> str:
    manifest = folder / "node_modules" / package / "package.json"
    return f"{package} {json.loads(manifest.read_text())['version']}" if manifest.is_file() else package


class Page:
    """The page in headless Chromium with the bundle loaded; run() clocks `steps` steps."""

    def __init__(self, stack: contextlib.ExitStack, bundle: Path, profile: Path):
        sys.path.insert(0, str(WEB))
        import headless
        from playwright.sync_api import sync_playwright

        if headless.missing():
            raise SystemExit(headless.missing())
        self.headless = headless
        playwright = stack.enter_context(sync_playwright())
        base = stack.enter_context(headless.serve_in_thread(bundle=bundle))
        context = headless.launch(playwright, profile, downloads=False)
        stack.callback(context.close)
        self.page = headless.open_page(context, base)
        loaded = headless.load_bundle(self.page, "bundle/")
        if loaded["phase"] != "ready":
            raise SystemExit(f"page: {loaded['message']}")
        self.threads = None

    def run(self, steps: int, raw: Path | None) -> list[float]:
        state, image = self.headless.run(self.page, steps)
        if state["phase"] != "done":
            raise SystemExit(f"page: {state['message']}")
        if raw is not None:
            np.save(raw, np.asarray(image, np.float32))
        self.threads = state["threads"]
        return state["milliseconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, nargs="?", help="an ort-graph bundle folder")
    parser.add_argument(
        "--write", type=Path, help="first write a bundle of the tests' kind into this new folder"
    )
    parser.add_argument("--size", type=int, default=96, help="with --write: its longest side")
    parser.add_argument("--model", type=Path, help="with --write: the export (default: a random-weight one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per run")
    parser.add_argument("--threads", type=int, default=0, help="native drivers' threads (0: ONNX Runtime's)")
    parser.add_argument("--page", action="store_true", help="also the page, in headless Chromium")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the Python driver's interpreter (e.g. a plain onnxruntime venv)",
    )
    args = parser.parse_args(argv)
    bundle = args.bundle
    if args.write is not None:
        write_bundle(args.write, args.size, args.model)
        bundle = args.write
    if bundle is None:
        parser.error("give a bundle folder or --write DIR")

    out = Path(tempfile.mkdtemp(prefix="nst-ort-embedding."))
    common = [str(bundle), "--iterations", str(args.steps), "--threads", str(args.threads)]

    def cli(name: str, command: list[str]):
        def run(steps: int, raw: Path | None) -> list[float]:
            extra = ["--raw", str(raw)] if raw is not None else []
            return run_cli([*command, *common, "-o", str(out / f"{name}.png"), *extra])

        return run

    drivers = {
        "python": cli("python", [args.python, str(PYTHON_DRIVER)]),
        "node": cli("node", ["node", str(NODE_DRIVER)]),
    }
    times: dict[str, list[float]] = {name: [] for name in drivers}
    with contextlib.ExitStack() as stack:
        page = None
        if args.page:
            page = Page(stack, bundle, out / "profile")
            drivers["page"] = page.run
            times["page"] = []
        for round_ in range(args.rounds):
            for name, run in drivers.items():
                raw = out / f"{name}.npy" if round_ == 0 else None
                times[name] += run(args.steps, raw)[1:]  # each run's first step warms the session up

    python = np.load(out / "python.npy")
    height, width = python.shape[2:]
    rounds = f"{args.rounds} rounds of {args.steps} steps"
    print(f"{bundle}: {width}x{height} px, {rounds}, native threads: {args.threads or 'default'}")
    versions = {
        "python": subprocess.run(
            [args.python, "-c", "import onnxruntime; print('onnxruntime', onnxruntime.__version__)"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "node": _package_version(ROOT / "examples" / "node", "onnxruntime-node"),
        "page": _package_version(WEB, "onnxruntime-web"),
    }
    reference = float(np.median(times["python"]))
    for name, values in times.items():
        median = float(np.median(values))
        line = f"{name:6s} ({versions[name]}) median {median:7.1f} ms a step ({len(values)} steps)"
        line += f", {median / reference:.2f}x Python"
        if name != "python":
            difference = np.abs(np.load(out / f"{name}.npy").reshape(python.shape) - python).max()
            line += f"; after {args.steps} steps max |difference| {difference:.1e}"
        if name == "page":
            line += f"; WebAssembly, {page.threads} threads"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
