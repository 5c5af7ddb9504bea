"""Wall time and peak memory of one `nst-ort` command, run in a child process.

    python -m benchmarks.peak stylize photo.jpg painting.jpg -o out.png --size 2048 --report out.json

The child's peak resident set comes from the kernel (getrusage's ru_maxrss of the children, in
KiB on Linux): ONNX Runtime's arena and numpy's blocks included, which tracemalloc would miss
(see memory.py). Prints one JSON line; with --report in the command, also each pass's size,
tiles and loop seconds per iteration, from which a run with other iteration counts is timed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def passes_of(report: Path) -> list[dict]:
    data = json.loads(report.read_text())
    found = []
    for p in data["passes"]:
        tiles = len(p.get("tiles", [])) or 1
        found.append(
            {
                "size": [p["width"], p["height"]],
                "tiles": tiles,
                "tile": [p["grid"]["tile_width"], p["grid"]["tile_height"]] if p.get("grid") else None,
                "targets_seconds": round(p["targets_seconds"], 1),
                "loop_seconds": round(p["loop_seconds"], 1),
                "seconds_per_iteration": round(p["loop_seconds"] * tiles / max(1, p["evaluations"]), 3),
            }
        )
    return found


def main(args: list[str]) -> dict:
    start = time.perf_counter()
    command = [sys.executable, "-c", "from nst_ort.cli import main; main()", *args]
    code = subprocess.run(command).returncode
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result = {"exit_code": code, "seconds": round(seconds, 1), "peak_rss_gib": round(peak / 2**30, 2)}
    if "--report" in args:
        report = Path(args[args.index("--report") + 1])
        if report.is_file():
            result["passes"] = passes_of(report)
    result["load_average"] = os.getloadavg()
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
