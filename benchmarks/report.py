"""Run the benchmark suite and render its results into benchmarks/README.md.

    python -m benchmarks.report                 # 128 and 256 px, then render
    python -m benchmarks.report -- --bench-512  # anything after -- goes to pytest
    python -m benchmarks.report --render-only   # re-render from the last results.json

pytest-benchmark writes every timing and its `extra_info` to results.json; this script adds the
context pytest-benchmark does not record (CPU model, load average before and after, library
versions, why the skipped backends were skipped) and replaces the section of README.md between
the results markers with tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.json"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


# --- context ----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    packages = (
        "onnxruntime-training-cpu",
        "onnxruntime-training",
        "onnxruntime-gpu",
        "onnxruntime",
        "torch",
        "numpy",
        "scipy",
    )
    for package in (*packages, "threadpoolctl"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def skipped_backends() -> dict[str, str]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.backends import BACKENDS

    return {name: reason for name, b in BACKENDS.items() if (reason := b.unavailable())}


def run_suite(pytest_args: list[str]) -> int:
    before = load_average()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "benchmarks/", f"--benchmark-json={RESULTS}", *pytest_args]
    print("$", " ".join(command), flush=True)
    code = subprocess.call(command, cwd=ROOT, env=env)
    if not RESULTS.is_file():
        return code or 1
    data = json.loads(RESULTS.read_text())
    data["nst_ort_context"] = {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before": before,
        "load_average_after": load_average(),
        "versions": versions(),
        "skipped_backends": skipped_backends(),
        "pytest_args": pytest_args,
        "exit_code": code,
    }
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    return code


# --- rendering --------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1e3 * seconds:,.0f}" if seconds >= 0.1 else f"{1e3 * seconds:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(data: dict) -> str:
    context = data.get("nst_ort_context", {})
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        by_kind[bench["extra_info"].get("kind", "other")].append(bench)
    threads = {b["extra_info"].get("threads") for b in data["benchmarks"]} - {None}

    cpu = context.get("cpu_model", "unknown CPU")
    library_versions = ", ".join(f"{k} {v}" for k, v in context.get("versions", {}).items())
    out = [
        f"Run {data['datetime'][:16].replace('T', ' ')} UTC on {cpu}, {context.get('cpus', '?')} cores, "
        f"{', '.join(map(str, sorted(threads)))} thread(s) for every backend; load average "
        f"{context.get('load_average_before')} before, {context.get('load_average_after')} after "
        f"(1, 5, 15 min). {library_versions}.",
        "",
    ]
    if context.get("pytest_args"):
        out += [f"pytest arguments: `{' '.join(context['pytest_args'])}`.", ""]

    # Evaluation table, with the side-by-side ratio for the same case.
    ratios = {}
    for bench in by_kind["side-by-side"]:
        info = bench["extra_info"]
        for name, ratio in info["ratio_to_torch"].items():
            ratios[(info["arch"], info["size"], name)] = (ratio, info["median_ms"][name], info["rounds"])
    rows = []
    evaluations = sorted(
        by_kind["evaluation"], key=lambda b: (b["extra_info"]["arch"], b["extra_info"]["size"])
    )
    for bench in evaluations:
        info, stats = bench["extra_info"], bench["stats"]
        key = (info["arch"], info["size"], info["backend"])
        ratio = ratios.get(key)
        gflops = 2 * info["macs"]["total"] / stats["median"] / 1e9
        rows.append(
            [
                info["arch"],
                f"{info['size']} px",
                info["backend"],
                _ms(stats["median"]),
                _ms(stats["min"]),
                str(stats["rounds"]),
                f"{ratio[1]:,.0f} / {ratio[0]:.2f}" if ratio else "–",
                _num(info["macs"]["total"] / 1e9, 1),
                _num(gflops, 0),
                _num(info.get("peak_rss_mb"), 0),
                _num(info.get("evaluation_rss_mb"), 0),
                "reference"
                if info["backend"] == info.get("checked_against")
                else f"{info['gradient_rel_l2']:.1e}"
                if info.get("gradient_rel_l2") is not None
                else "–",
            ]
        )
    out += ["### One value-and-gradient evaluation", ""]
    out += _table(
        [
            "network",
            "size",
            "backend",
            "median ms",
            "min ms",
            "rounds",
            "side by side: median ms / × torch",
            "GMAC",
            "GFLOP/s",
            "peak RSS MB",
            "evaluation RSS MB",
            "gradient vs torch (rel. L2)",
        ],
        rows,
    )
    skipped = context.get("skipped_backends", {})
    if skipped:
        out += ["", "Not measured here: " + "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) + "."]

    if by_kind["loop"]:
        rows = []
        for bench in sorted(
            by_kind["loop"], key=lambda b: (b["extra_info"]["size"], b["extra_info"]["optimizer"])
        ):
            info = bench["extra_info"]
            rows.append(
                [
                    info["optimizer"],
                    f"{info['arch']} {info['size']} px",
                    _num(info["step_ms"], 0),
                    _num(info["evaluations_per_step"], 2),
                    _num(info["evaluation_ms"], 0),
                    _num(info["optimizer_ms"], 1) if info["optimizer"] == "adam" else "–",
                    f"{100 * info['overhead_fraction']:.1f}%",
                    _num(info["per_call_ms"], 0),
                ]
            )
        out += ["", "### Whole optimisation steps through nst_ort's loop (ort-cpu)", ""]
        out += _table(
            [
                "optimiser",
                "case",
                "ms per step",
                "evaluations per step",
                "ms per ORT evaluation",
                "ms per ORT Adam update",
                "outside the evaluation, per step (bar ≤ 5% at 256 px)",
                "once per call, ms",
            ],
            rows,
        )
        single = {b["extra_info"].get("blas_single_threaded") for b in by_kind["loop"]}
        out += [
            "",
            "Steady state between the first and the last of each round's steps; 'once per call' is "
            "the rest of a round's time outside ORT (scipy's set-up converts the [0, 1] bounds pixel "
            "by pixel in Python). scipy's BLAS "
            + ("kept to one thread (threadpoolctl)." if single == {True} else "at its default threads."),
        ]

    for bench in by_kind["time-to-quality"]:
        info = bench["extra_info"]
        rows = []
        for name, result in info["results"].items():
            rows.append(
                [
                    name,
                    str(result["evaluations"]),
                    " → ".join(_num(x, 1) for x in result["loss_at_quarters"]),
                    _num(result["seconds_to_target"], 1),
                ]
            )
        out += [
            "",
            f"### Time to quality: L-BFGS, {info['arch']} {info['size']} px, {info['budget_s']:.0f} s each",
            "",
            f"Start loss {info['initial_loss']:,.1f}; target: the worse final loss, "
            f"{_num(info['target_loss'], 1)}.",
            "",
        ]
        out += _table(
            ["optimiser", "evaluations", "best loss at ¼, ½, ¾, all of the budget", "seconds to target"],
            rows,
        )

    for bench in by_kind["sgemm"]:
        info = bench["extra_info"]
        out += [
            "",
            f"SGEMM (torch.mm, {info['n']}×{info['n']} float32, {info['threads']} threads): "
            f"{_num(info.get('gflops'), 0)} GFLOP/s, measured once, at whatever load there was then.",
        ]
    return "\n".join(out) + "\n"


def write_readme(section: str) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README} has no {START} … {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{section}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render-only", action="store_true", help="render the last results.json again")
    args = parser.parse_args(own)
    code = 0
    if not args.render_only:
        code = run_suite(pytest_args)
    data = json.loads(RESULTS.read_text())
    write_readme(render(data))
    print(f"rendered {RESULTS.name} into {README}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
