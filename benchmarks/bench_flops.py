"""How close the batched path gets to this machine's float32 matmul peak, at widths 512 and 1024.

Peak: the best of N large `torch.mm` (n x n) calls. Achieved: matmul FLOPs of one batched AdamW
training step (MLP 40 -> w -> w -> 10, batch 128, K copies) divided by the step's wall time, so
everything that is not a matmul (activations, loss, optimizer, Python) counts as lost time; the
last column says how much of the step the (memory-bound) optimizer step alone takes.

    .venv/bin/python benchmarks/bench_flops.py [--threads N] [--k 8] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

import wdscale
from wdscale.study.plan.models import MLP
from wdscale.study.train.engine import BatchedTrainer
from wdscale.study.train.loop import gather

IN, OUT, BATCH, N = 40, 10, 128, 4096


def best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_flops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    return 2 * n**3 / best_of(lambda: torch.mm(a, b, out=out), repeats)


def step_flops(width: int) -> int:
    """Matmul FLOPs of one model's training step: forward, input grads (not of the data), weight grads."""
    dims = [(IN, width), (width, width), (width, OUT)]
    fwd = sum(2 * BATCH * i * o for i, o in dims)
    input_grads = sum(2 * BATCH * i * o for i, o in dims[1:])
    return 2 * fwd + input_grads  # weight grads cost what the forward costs


def batched_flops(k: int, width: int, steps: int, repeats: int) -> tuple[float, float]:
    """(achieved matmul FLOP/s of whole training steps, share of the step spent in the optimizer)."""
    models, opts = [], []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(MLP(IN, OUT, width, 2))
        opts.append(wdscale.optimizer(models[-1], "adamw", rule="decoupled", lr=1e-3, weight_decay=0.1))
    trainer = BatchedTrainer(models, opts, native=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, IN, generator=g), torch.randint(0, OUT, (N,), generator=g)
    idx = torch.randint(0, N, (steps, k, BATCH), generator=g)

    def run():
        for s in range(steps):
            trainer.step(gather(x, idx[s]), gather(y, idx[s]))

    def optimizer_only():
        for _ in range(steps):
            trainer.optimizer.step(trainer.flat, trainer.grad)

    t_step, t_opt = best_of(run, repeats), best_of(optimizer_only, repeats)
    return k * steps * step_flops(width) / t_step, t_opt / t_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else 7
    peak = max(peak_flops(n, repeats) for n in ((2048,) if args.quick else (2048, 4096)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 mm peak {peak / 1e9:.1f} GFLOP/s")
    print(f"{'width':>6} {'K':>4} {'GFLOP/s':>8} {'of peak':>8} {'optimizer share':>16}")
    for width in (512, 1024):
        achieved, opt_share = batched_flops(args.k, width, 2 if args.quick else 4, repeats)
        print(f"{width:>6} {args.k:>4} {achieved / 1e9:>8.1f} {achieved / peak:>8.0%} {opt_share:>16.0%}", flush=True)


if __name__ == "__main__":
    main()
