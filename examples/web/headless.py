"""Drive the page in headless Chromium with Playwright: for its tests and the speed measurements.

Uses the system's Chromium (Debian's `chromium` package), never a browser Playwright downloads:

    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright, serve_in_thread(bundle=folder) as base:
        context = launch(playwright, profile_dir)
        page = open_page(context, base)
        load_bundle(page, "bundle/")
        state, image = run(page, steps=8)

Needs `pip install playwright` (no `playwright install`) and Chromium at CHROMIUM.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from serve import serve_in_thread as _serve_in_thread

CHROMIUM = os.environ.get("NST_ORT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox (root in a container), no GPU (none here: WebGPU is absent and the page uses
# WebAssembly), and none of the background traffic that fills the log with refused connections
# where the network is closed.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FINISHED = ("done", "stopped", "nonfinite", "error")


def missing() -> str | None:
    """Why the page cannot be driven here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    here = Path(__file__).resolve().parent
    if not (here / "node_modules" / "onnxruntime-web").is_dir():
        return f"onnxruntime-web is not installed: run `npm ci` in {here}"
    return None


@contextlib.contextmanager
def serve_in_thread(bundle: Path | None = None) -> Iterator[str]:
    """The page (and `bundle`'s folder at /bundle/) on 127.0.0.1; yields the base URL."""
    server, base = _serve_in_thread(bundle=bundle)
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


def launch(playwright, profile: Path, downloads: bool = True):
    """Chromium with a fresh profile folder; returns the browser context (close() it)."""
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=FLAGS,
        accept_downloads=downloads,
        viewport={"width": 1100, "height": 1000},
    )


def open_page(context, base: str, query: str = ""):
    """The page, loaded; page errors are collected in page.errors."""
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(base + query)
    page.wait_for_function("window.nstPage !== undefined")
    return page


def state(page) -> dict:
    return page.evaluate("window.nstPage.state()")


def wait_for(page, phases: tuple[str, ...], timeout_s: float = 120) -> dict:
    condition = f"{list(phases)!r}.includes(window.nstPage.state().phase)"
    page.wait_for_function(condition, timeout=timeout_s * 1000)
    return state(page)


def load_bundle(page, url: str, timeout_s: float = 120) -> dict:
    """Load the bundle at `url` (relative to the page) through the URL field; returns the state."""
    page.fill("#bundle-url", url)
    page.click("#load-url")
    return wait_for(page, ("ready", "error"), timeout_s)


def run(page, steps: int, backend: str = "auto", timeout_s: float = 600) -> tuple[dict, list[float]]:
    """Run `steps` steps with the Run button; returns the final state and the image (NCHW, flat)."""
    page.select_option("#backend", backend)
    page.fill("#steps", str(steps))
    runs = state(page)["runs"]
    page.click("#run")
    page.wait_for_function(
        f"(s => s.runs > {runs} && {list(FINISHED)!r}.includes(s.phase))(window.nstPage.state())",
        timeout=timeout_s * 1000,
    )
    return state(page), page.evaluate("window.nstPage.image()")


def canvas_rgba(page) -> list[int]:
    """The pixels the page shows (its main canvas), RGBA row by row."""
    return page.evaluate(
        "(() => { const c = document.getElementById('canvas');"
        " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); })()"
    )
