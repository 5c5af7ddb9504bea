"""The machine's practical limit: float32 matrix products at the suite's thread count.

Convolutions are at best GEMM-bound, so the SGEMM rate is the ceiling the evaluations' GFLOP/s
are read against (the table gives each as a fraction of it).
"""

from __future__ import annotations

import numpy as np

from benchmarks.backends import require


def test_sgemm(benchmark, settings):
    require("torch-cpu")
    import torch

    torch.set_num_threads(settings.threads)
    n = 256 if settings.quick else 2048
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=gen), torch.rand(n, n, generator=gen)

    product = benchmark.pedantic(torch.mm, args=(a, b), rounds=max(settings.rounds, 3), warmup_rounds=1)

    benchmark.group = "hardware"
    benchmark.extra_info.update(kind="sgemm", n=n, threads=settings.threads, macs={"total": n**3})
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = 2 * n**3 / benchmark.stats.stats.median / 1e9
    desired = a[:8].double() @ b.double()
    np.testing.assert_allclose(product[:8].double().numpy(), desired.numpy(), rtol=1e-4)
