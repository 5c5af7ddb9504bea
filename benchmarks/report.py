"""Run the benchmark suite and render its results into benchmarks/README.md.

    python -m benchmarks.report                 # 128 and 256 px, then render
    python -m benchmarks.report -- --bench-512  # anything after -- goes to pytest
    python -m benchmarks.report --render-only   # re-render from the last results.json

pytest-benchmark writes every timing and its `extra_info` to results.json; this script adds the
context pytest-benchmark does not record (CPU model, load average before and after, library
versions, why the skipped backends were skipped) and replaces the section of README.md between
the results markers with tables.

The bf16 rows need onnxruntime-openvino, which cannot share an environment with
onnxruntime-training: where `--openvino-python` (default: .venv-ov/bin/python in the repository,
if there) names another environment's interpreter, with `pip install -e ".[openvino,export,dev]"`,
the suite's bf16 evaluations, the side-by-side runs and the time-to-quality race run again there
(the same pytest arguments) and their results join results.json, marked `environment: openvino`.
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
OPENVINO_RESULTS = HERE / "results-openvino.json"
OPENVINO_PYTHON = ROOT / ".venv-ov" / "bin" / "python"
# What runs in the OpenVINO environment: what needs the bf16 backend or races it.
OPENVINO_TESTS = ["benchmarks/test_evaluation.py", "benchmarks/test_time_to_quality.py"]
OPENVINO_SELECTION = "openvino or side_by_side or time_to_quality"
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


PACKAGES = (
    "onnxruntime-training-cpu",
    "onnxruntime-training",
    "onnxruntime-openvino",
    "onnxruntime-gpu",
    "onnxruntime",
    "torch",
    "numpy",
    "scipy",
    "threadpoolctl",
)


def environment() -> dict:
    """Library versions and skipped backends of this interpreter's environment."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    sys.path.insert(0, str(ROOT))
    from benchmarks.backends import BACKENDS

    skipped = {name: reason for name, b in BACKENDS.items() if (reason := b.unavailable())}
    return {"versions": found, "skipped_backends": skipped}


def _pytest(python: str, tests: list[str], json_path: Path, pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [python, "-m", "pytest", *tests, f"--benchmark-json={json_path}", *pytest_args]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def openvino_args(pytest_args: list[str]) -> list[str]:
    """The same arguments, the selection narrowed to what the OpenVINO environment adds."""
    args, selection, i = [], OPENVINO_SELECTION, 0
    while i < len(pytest_args):
        if pytest_args[i] == "-k" and i + 1 < len(pytest_args):
            selection = f"({pytest_args[i + 1]}) and ({OPENVINO_SELECTION})"
            i += 2
            continue
        args.append(pytest_args[i])
        i += 1
    return [*args, "-k", selection]


def run_openvino(python: Path, pytest_args: list[str]) -> tuple[int, dict | None]:
    """The bf16 rows in the OpenVINO environment: (exit code, its results and context)."""
    OPENVINO_RESULTS.unlink(missing_ok=True)
    code = _pytest(str(python), OPENVINO_TESTS, OPENVINO_RESULTS, openvino_args(pytest_args))
    if not OPENVINO_RESULTS.is_file():
        return code or 1, None
    data = json.loads(OPENVINO_RESULTS.read_text())
    probe = "import json, benchmarks.report as r; print(json.dumps(r.environment()))"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    described = subprocess.run(
        [str(python), "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    lines = described.stdout.strip().splitlines()
    data["environment"] = json.loads(lines[-1]) if described.returncode == 0 and lines else {}
    return code, data


def run_suite(pytest_args: list[str], openvino_python: Path | None) -> int:
    before = load_average()
    code = _pytest(sys.executable, ["benchmarks/"], RESULTS, pytest_args)
    if not RESULTS.is_file():
        return code or 1
    openvino_code, openvino = (0, None)
    if openvino_python is not None:
        openvino_code, openvino = run_openvino(openvino_python, pytest_args)
    data = json.loads(RESULTS.read_text())
    data["nst_ort_context"] = {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "load_average_before": before,
        "load_average_after": load_average(),
        **environment(),
        "pytest_args": pytest_args,
        "exit_code": code,
    }
    if openvino is not None:
        for bench in openvino["benchmarks"]:
            bench["extra_info"]["environment"] = "openvino"
            data["benchmarks"].append(bench)
        data["nst_ort_context"]["openvino"] = {**openvino["environment"], "exit_code": openvino_code}
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    return code or openvino_code


# --- rendering --------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1e3 * seconds:,.0f}" if seconds >= 0.1 else f"{1e3 * seconds:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


OPENVINO = "openvino"  # extra_info["environment"] of the results run in the OpenVINO environment


def _env(bench: dict) -> str:
    return bench["extra_info"].get("environment", "main")


def _ceilings(by_kind: dict[str, list[dict]]) -> dict[str, float]:
    """GFLOP/s of the GEMMs measured in this run, by kind (sgemm, bf16-gemm)."""
    found = {}
    for kind in ("sgemm", "bf16-gemm"):
        rates = [b["extra_info"]["gflops"] for b in by_kind[kind] if b["extra_info"].get("gflops")]
        if rates:
            found[kind] = max(rates)
    return found


def _share(gflops: float, ceiling: float | None) -> str:
    return "–" if not ceiling else f"{100 * gflops / ceiling:.0f}%"


def _versions(versions: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def _evaluation_section(by_kind, ceilings, context) -> list[str]:
    ratios = {}
    for bench in by_kind["side-by-side"]:
        info = bench["extra_info"]
        for name, ratio in info["ratio_to_torch"].items():
            key = (info["arch"], info["size"], name, _env(bench))
            ratios[key] = (ratio, info["median_ms"][name], info["rounds"])
    rows = []
    evaluations = sorted(
        by_kind["evaluation"],
        key=lambda b: (b["extra_info"]["arch"], b["extra_info"]["size"], _env(b) == OPENVINO),
    )
    for bench in evaluations:
        info, stats = bench["extra_info"], bench["stats"]
        ratio = ratios.get((info["arch"], info["size"], info["backend"], _env(bench)))
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
                _share(gflops, ceilings.get("sgemm")),
                _share(gflops, ceilings.get("bf16-gemm")),
                _num(info.get("peak_rss_mb"), 0),
                _num(info.get("evaluation_rss_mb"), 0),
                "reference"
                if info["backend"] == info.get("checked_against")
                else f"{info['gradient_rel_l2']:.1e}"
                if info.get("gradient_rel_l2") is not None
                else "–",
            ]
        )
    out = ["### One value-and-gradient evaluation", ""]
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
            "of SGEMM",
            "of bf16 GEMM",
            "peak RSS MB",
            "evaluation RSS MB",
            "gradient vs torch (rel. L2)",
        ],
        rows,
    )
    skipped = dict(context.get("skipped_backends", {}))
    if context.get("openvino"):  # measured there: not skipped
        for name in set(skipped) - set(context["openvino"].get("skipped_backends", {})):
            skipped.pop(name)
    if skipped:
        out += ["", "Not measured here: " + "; ".join(f"`{k}`: {v}" for k, v in skipped.items()) + "."]
    return out


def _bf16_section(by_kind, ceilings) -> list[str]:
    benches = [b for b in by_kind["side-by-side"] if _env(b) == OPENVINO]
    if not benches:
        return []
    bf16, fp32 = "openvino-bf16-cpu", "ort-graph-cpu"
    rows = []
    for bench in sorted(benches, key=lambda b: (b["extra_info"]["arch"], b["extra_info"]["size"])):
        info = bench["extra_info"]
        ms, ratio = info["median_ms"], info["ratio_to_torch"]
        if bf16 not in ms:
            continue
        gflops = info["gflops"][bf16]
        rows.append(
            [
                info["arch"],
                f"{info['size']} px",
                f"{ms['torch-cpu']:,.0f}",
                f"{ms[fp32]:,.0f} / {ratio[fp32]:.2f}" if fp32 in ms else "–",
                f"{ms[bf16]:,.0f} / {ratio[bf16]:.2f}",
                _num(gflops, 0),
                _share(gflops, ceilings.get("sgemm")),
                _share(gflops, ceilings.get("bf16-gemm")),
                str(info["rounds"]),
            ]
        )
    out = ["", "### bf16 (openvino-bf16) side by side with float32, in the OpenVINO environment", ""]
    out += _table(
        [
            "network",
            "size",
            "torch-cpu ms",
            "ort-graph-cpu ms / × torch",
            "openvino-bf16-cpu ms / × torch (bar ≤ 0.6 at 256, 512 px)",
            "bf16 GFLOP/s",
            "of SGEMM",
            "of bf16 GEMM",
            "rounds",
        ],
        rows,
    )
    return out


def _loop_section(by_kind) -> list[str]:
    if not by_kind["loop"]:
        return []
    rows = []
    ordered = sorted(by_kind["loop"], key=lambda b: (b["extra_info"]["size"], b["extra_info"]["optimizer"]))
    for bench in ordered:
        info = bench["extra_info"]
        rows.append(
            [
                info["optimizer"],
                f"{info['arch']} {info['size']} px",
                _num(info["step_ms"], 0),
                _num(info["evaluations_per_step"], 2),
                _num(info["evaluation_ms"], 0),
                # Results from before Adam moved to the host timed ONNX Runtime's optimizer step.
                _num(info["optimizer_ms"], 1) if info.get("optimizer_ms") is not None else "–",
                f"{100 * info['overhead_fraction']:.1f}%",
                _num(info["per_call_ms"], 0),
            ]
        )
    out = ["", "### Whole optimisation steps through nst_ort's loop (ort-cpu)", ""]
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
    return out


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _budget_race(info: dict) -> list[str]:
    """The race as results.json files before 2026-11-30 recorded it: a wall-clock budget each."""
    rows = [
        [
            name,
            str(result["evaluations"]),
            " → ".join(_num(x, 1) for x in result["loss_at_quarters"]),
            _num(result["seconds_to_target"], 1),
        ]
        for name, result in info["results"].items()
    ]
    out = [
        "",
        f"### Time to quality: L-BFGS, {info['arch']} {info['size']} px, {info['budget_s']:.0f} s each",
        "",
        f"Start loss {info['initial_loss']:,.1f}; target: the worse final loss, "
        f"{_num(info['target_loss'], 1)}.",
        "",
    ]
    header = ["optimiser", "evaluations", "best loss at ¼, ½, ¾, all of the budget", "seconds to target"]
    return out + _table(header, rows)


def _race_section(by_kind, context) -> list[str]:
    out = []
    for bench in sorted(by_kind["time-to-quality"], key=lambda b: _env(b) == OPENVINO):
        info = bench["extra_info"]
        if "budget_s" in info:
            out += _budget_race(info)
            continue
        where = "the main environment"
        if _env(bench) == OPENVINO and context.get("openvino"):
            runtime = context["openvino"]["versions"].get("onnxruntime", "?")
            where = f"the OpenVINO environment (onnxruntime {runtime})"
        rows = []
        for name, result in info["results"].items():
            evaluations = result["evaluations_to_target"]
            rows.append(
                [
                    name,
                    str(result["evaluations"]),
                    _num(result["seconds"], 1),
                    " → ".join(_num(x, 1) for x in result["loss_at_quarters"]),
                    "–"
                    if result["seconds_to_target"] is None
                    else f"{result['seconds_to_target']:.1f} ({evaluations})",
                    _ratio(result["ratio_to_torch"]),
                    _num(result["seconds_to_raw_target"], 1),
                    _ratio(result["ratio_to_torch_raw"]),
                ]
            )
        out += [
            "",
            f"### Time to quality: L-BFGS, {info['arch']} {info['size']} px, in {where}",
            "",
            f"Start loss {info['initial_loss']:,.1f}. Target: torch's best loss in "
            f"{info['reference_evaluations']} evaluations, judged on its iterate clipped to [0, 1] "
            f"(float32, CPU provider): {_num(info['target_loss'], 1)}; torch's own loss of its "
            f"unclipped iterate: {_num(info['raw_target_loss'], 1)}. The others stop at the target or "
            f"at {info['limit']:g} × torch's time to it.",
            "",
        ]
        out += _table(
            [
                "optimiser",
                "evaluations",
                "seconds",
                "judged loss at ¼, ½, ¾, all of torch's time",
                "seconds (evaluations) to target",
                "× torch (bar ≤ 0.8)",
                "seconds to torch's unclipped loss",
                "× torch",
            ],
            rows,
        )
        if info.get("skipped"):
            out += ["", "Not raced: " + "; ".join(f"`{k}`: {v}" for k, v in info["skipped"].items()) + "."]
    return out


def render(data: dict) -> str:
    context = data.get("nst_ort_context", {})
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        by_kind[bench["extra_info"].get("kind", "other")].append(bench)
    threads = {b["extra_info"].get("threads") for b in data["benchmarks"]} - {None}
    ceilings = _ceilings(by_kind)

    cpu = context.get("cpu_model", "unknown CPU")
    out = [
        f"Run {data['datetime'][:16].replace('T', ' ')} UTC on {cpu}, {context.get('cpus', '?')} cores, "
        f"{', '.join(map(str, sorted(threads)))} thread(s) for every backend; load average "
        f"{context.get('load_average_before')} before, {context.get('load_average_after')} after "
        f"(1, 5, 15 min). {_versions(context.get('versions', {}))}.",
        "",
    ]
    if context.get("openvino"):
        out += [
            "The bf16 rows, their side-by-side runs and the second race: the OpenVINO environment, "
            f"{_versions(context['openvino'].get('versions', {}))}.",
            "",
        ]
    if context.get("pytest_args"):
        out += [f"pytest arguments: `{' '.join(context['pytest_args'])}`.", ""]
    out += _evaluation_section(by_kind, ceilings, context)
    out += _bf16_section(by_kind, ceilings)
    out += _loop_section(by_kind)
    out += _race_section(by_kind, context)
    gemms = []
    for kind, label in (("sgemm", "float32"), ("bf16-gemm", "bf16")):
        for bench in by_kind[kind]:
            info = bench["extra_info"]
            gemms.append(f"{label} {_num(info.get('gflops'), 0)} GFLOP/s")
    if gemms:
        n, gemm_threads = by_kind["sgemm"][0]["extra_info"]["n"], by_kind["sgemm"][0]["extra_info"]["threads"]
        out += [
            "",
            f"Ceilings (torch.mm, {n}×{n}, {gemm_threads} threads): {', '.join(gemms)}; measured once, "
            "at whatever load there was then.",
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
    parser.add_argument(
        "--openvino-python",
        type=Path,
        default=OPENVINO_PYTHON if OPENVINO_PYTHON.exists() else None,
        help="interpreter of an environment with the openvino extra, for the bf16 rows "
        "(default: .venv-ov/bin/python if there; 'none' to skip)",
    )
    args = parser.parse_args(own)
    if args.openvino_python is not None and str(args.openvino_python) == "none":
        args.openvino_python = None
    code = 0
    if not args.render_only:
        code = run_suite(pytest_args, args.openvino_python)
    data = json.loads(RESULTS.read_text())
    write_readme(render(data))
    print(f"rendered {RESULTS.name} into {README}", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
