"""Where the time of one ORT training step goes: ONNX Runtime's own profile, summed by kernel.

    python -m benchmarks.profile_ort --arch vgg19 --size 256
    python -m benchmarks.profile_ort --arch vgg19 --size 256 --as-generated   # before the rewrites

Builds the artifacts for a random-weight export as nst_ort does, runs a few steps of the same
Module with `SessionOptions.enable_profiling`, and prints each kernel's share of the kernel
time. Convolutions are split into forward and input-gradient ones (ORT names the latter after
the gradient they produce). `--as-generated` profiles the artifacts exactly as
onnxruntime-training generates them, without nst_ort's rewrites (nst_ort/rewrites.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def summarise(profile: Path) -> tuple[int, float, dict[str, float]]:
    """(steps, mean step ms, {kernel: ms per step}) from an ORT profile file."""
    events = json.loads(profile.read_text())
    kernels: dict[str, float] = defaultdict(float)
    steps, total = 0, 0.0
    for event in events:
        if event.get("cat") == "Session" and event["name"] == "model_run":
            steps += 1
            total += event["dur"]
        elif event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            if op == "Conv" and "grad" in event["name"].lower():
                op = "Conv (input gradient)"
            elif op == "Conv":
                op = "Conv (forward)"
            kernels[op] += event["dur"]
    steps = max(steps, 1)
    return steps, total / steps / 1e3, {k: v / steps / 1e3 for k, v in kernels.items()}


def profile(arch: str, size: int, threads: int, steps: int, as_generated: bool, work: Path) -> Path:
    from onnxruntime.training import api

    from benchmarks.workload import SPEC, WEIGHTS_SEED, Case, write_inputs
    from export.exporter import ExportSpec, export_model
    from export.weights import random_weights
    from nst_ort import contract
    from nst_ort.backends import artifacts
    from nst_ort.backends.ort import session_options
    from nst_ort.contract import Arch
    from nst_ort.model import load_model

    model_path = work / f"{arch}.onnx"
    export_model(model_path, ExportSpec(arch=Arch(arch)), random_weights(Arch(arch), seed=WEIGHTS_SEED))
    write_inputs(model_path, size, work / "inputs.npz")
    case = Case(Arch(arch), size, threads, model_path, work / "artifacts", work / "inputs.npz")
    if as_generated:  # build as onnxruntime-training writes them
        artifacts.conv_grads_as_convs = artifacts.relu_grads_as_masks = lambda model: 0
    model, info = load_model(model_path)
    entry = artifacts.ensure(model, info.sha256, SPEC, size, size, case.cache)
    image, values = case.load_inputs()

    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "profile")
    state = api.CheckpointState.load_checkpoint(str(entry.checkpoint))
    module = api.Module(str(entry.training_model), state, str(entry.eval_model), "cpu", options)
    for name in entry.frozen:
        state.parameters[name].data = np.array(values[name], np.float32)
    state.parameters[contract.IMAGE].data = image
    module.train()
    for _ in range(steps):
        start = time.perf_counter()
        module.lazy_reset_grad()
        module()
        print(f"step {1e3 * (time.perf_counter() - start):.0f} ms", flush=True)
    del module  # the profile is written when the session goes
    return max(work.glob("profile*.json"), key=lambda p: p.stat().st_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg19", choices=["vgg16", "vgg19"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all cores)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--as-generated", action="store_true", help="skip nst_ort's graph rewrites")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = profile(args.arch, args.size, args.threads, args.steps, args.as_generated, Path(tmp))
        steps, step_ms, kernels = summarise(path)
    total = sum(kernels.values())
    form = "as generated" if args.as_generated else "with nst_ort's rewrites"
    print(f"\n{args.arch} {args.size} px, {form}: {steps} profiled steps, {step_ms:.0f} ms per step")
    print("| kernel | ms per step | share |\n|---|---|---|")
    for op, ms in sorted(kernels.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"| {op} | {ms:.1f} | {100 * ms / total:.1f}% |")


if __name__ == "__main__":
    main()
