"""Serve the page (this folder) and, optionally, a bundle folder at /bundle/, on 127.0.0.1.

    python3 serve.py [--bundle ../../my-bundle] [--port 8000]

then open http://127.0.0.1:8000/ (with --bundle: http://127.0.0.1:8000/?bundle=bundle/).

Any static server works for the page; this one adds what makes it fast: the headers that make
the page cross-origin isolated (COOP/COEP), without which browsers give WebAssembly no shared
memory and onnxruntime-web runs on one thread, and the `application/wasm` type, without which
the WebAssembly is compiled only after it has downloaded. Python's standard library only.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

HERE = Path(__file__).resolve().parent
BUNDLE_PREFIX = "/bundle/"


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from `directory`, /bundle/… from `bundle` (if given), with COOP/COEP headers."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
        ".bin": "application/octet-stream",
    }

    def __init__(self, *args, bundle: Path | None = None, quiet: bool = True, **kwargs):
        self.bundle = bundle
        self.quiet = quiet
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        route = unquote(urlsplit(path).path)
        if self.bundle is not None and route.startswith(BUNDLE_PREFIX):
            parts = [p for p in route[len(BUNDLE_PREFIX) :].split("/") if p not in ("", ".", "..")]
            return str(self.bundle.joinpath(*parts))
        return super().translate_path(path)

    def end_headers(self) -> None:
        # Cross-origin isolation: SharedArrayBuffer, hence onnxruntime-web's threads.
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)


def make_server(
    port: int = 0, bundle: Path | None = None, quiet: bool = True
) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1 (port 0: any free one), not yet serving."""
    handler = functools.partial(
        Handler, directory=str(HERE), bundle=Path(bundle).resolve() if bundle else None, quiet=quiet
    )
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve_in_thread(port: int = 0, bundle: Path | None = None) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; returns the server (call shutdown()) and its base URL."""
    server = make_server(port, bundle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the nst-ort page on 127.0.0.1.")
    parser.add_argument("--bundle", type=Path, help="a bundle folder, served at /bundle/")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    args = parser.parse_args(argv)
    if args.bundle is not None and not (args.bundle / "bundle.json").is_file():
        print(f"error: {args.bundle}: not a bundle (no bundle.json)", file=sys.stderr)  # noqa: T201
        return 2
    if not (HERE / "node_modules" / "onnxruntime-web").is_dir():
        print(f"error: run `npm ci` in {HERE} first (onnxruntime-web)", file=sys.stderr)  # noqa: T201
        return 2
    try:
        server = make_server(args.port, args.bundle, quiet=False)
    except OSError as exc:
        print(f"error: port {args.port}: {exc.strerror}", file=sys.stderr)  # noqa: T201
        return 1
    query = "?bundle=bundle/" if args.bundle else ""
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/{query} (Ctrl-C stops)")  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
