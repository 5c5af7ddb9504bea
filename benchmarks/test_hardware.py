"""The machine's practical limits: float32 and bf16 matrix products at the suite's thread count.

Convolutions are at best GEMM-bound, so the SGEMM rate is the ceiling the float32 evaluations'
GFLOP/s are read against, and the bf16 GEMM rate (where the CPU has bf16 instructions, about
twice SGEMM's) the ceiling of the bf16 path; the table gives each evaluation against both.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.backends import require


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_gemm(benchmark, settings, dtype):
    require("torch-cpu")
    import torch

    torch.set_num_threads(settings.threads)
    n = 256 if settings.quick else 2048
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.rand(n, n, generator=gen).to(getattr(torch, dtype)) for _ in range(2))

    product = benchmark.pedantic(torch.mm, args=(a, b), rounds=max(settings.rounds, 3), warmup_rounds=1)

    benchmark.group = "hardware"
    kind = "sgemm" if dtype == "float32" else "bf16-gemm"
    benchmark.extra_info.update(kind=kind, n=n, threads=settings.threads, macs={"total": n**3})
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = 2 * n**3 / benchmark.stats.stats.median / 1e9
    desired = a[:8].double() @ b.double()
    # bf16 products of n terms, accumulated in float32, rounded to bf16 (8 significant bits)
    rtol = 1e-4 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(product[:8].double().numpy(), desired.numpy(), rtol=rtol)
