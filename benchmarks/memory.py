"""Peak memory of one backend's evaluation, measured in a fresh process.

tracemalloc sees only Python's allocator, not ORT's arena, oneDNN's buffers or numpy's native
blocks, so the probe reads the kernel's counters instead: a fresh interpreter builds the
backend (the artifacts are already cached by the parent), then the peak resident set is reset
(writing 5 to /proc/self/clear_refs resets VmHWM, Linux >= 4.0) and two evaluations run. It
reports the process's peak (libraries, model and all) and the part of it the evaluation added
on top of what the process held after setup. Without clear_refs it falls back to
getrusage's ru_maxrss, which also counts setup's peak.

Run as `python -m benchmarks.memory BACKEND CASE_JSON`; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks.workload import Case

ROOT = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def probe(backend_name: str, case: Case) -> dict:
    from benchmarks.backends import BACKENDS

    evaluator = BACKENDS[backend_name].make(case)
    image, _ = case.load_inputs()
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    for _ in range(2):
        evaluator.value_and_grad(image)
    peak = _status_kib("VmHWM") if reset else None
    if peak is None:  # ru_maxrss is in KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_rss_mb": peak / 1024,
        "evaluation_rss_mb": (peak - before) / 1024 if before is not None else None,
        "method": "VmHWM after clear_refs" if reset else "ru_maxrss",
    }


def measure(backend_name: str, case: Case, timeout: float = 600) -> dict:
    """Run the probe in a fresh interpreter with this repository first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", backend_name, case.to_json()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"memory probe for {backend_name} failed: {tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], Case.from_json(sys.argv[2]))))
