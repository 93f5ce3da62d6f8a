"""Batched engine vs the sequential torch.optim loop: steps/s of each and the ratio, side by side.

AdamW (rule "decoupled", per-group lr/λ from wdscale.optimizer), MLP 40 -> w -> w -> 10, batch 128,
random data. Both paths do what a study does per step: gather the batch, forward, loss, backward,
step (the sequential one also reads the loss, as `train_run` does). The machine is noisy, so
the two paths are timed A/B interleaved and the best of `--repeats` is kept for each.

    .venv/bin/python benchmarks/bench_grid.py            # K in {8, 32, 128} x width in {64, 256, 1024}
    .venv/bin/python benchmarks/bench_grid.py --quick    # K=32, width 64 only, fewer steps
    .venv/bin/python benchmarks/bench_grid.py --threads 1
    .venv/bin/python benchmarks/bench_grid.py --quick --schedule cosine   # both paths under warmup + cosine

The last line is `speedup_k32_w64=<ratio>` (sequential time / batched time at K=32, width 64).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import wdscale
from wdscale.study.plan.models import MLP
from wdscale.study.train.engine import BatchedTrainer
from wdscale.study.train.loop import gather, per_model_loss

IN, OUT, BATCH, N = 40, 10, 128, 4096


def make(k: int, width: int):
    models, opts = [], []
    for seed in range(k):
        torch.manual_seed(seed)
        m = MLP(IN, OUT, width, 2)
        models.append(m)
        opts.append(wdscale.optimizer(m, "adamw", rule="decoupled", lr=1e-3, weight_decay=0.1))
    return models, opts


def bench(
    k: int, width: int, steps: int, repeats: int, seq_models: int, vmap: bool, schedule: str = "constant"
) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, IN, generator=g), torch.randint(0, OUT, (N,), generator=g)
    idx = torch.randint(0, N, (steps, k, BATCH), generator=g)
    models, opts = make(k, width)
    paths = {"bmm": BatchedTrainer(models, opts, native=True)}
    if vmap:
        paths["vmap"] = BatchedTrainer(models, opts, native=False)
    m = min(k, seq_models)  # sequential cost is linear in K: time m models, scale to K
    # a schedule as a study runs it: the engine sets each step's multiplier, the loop steps LambdaLR
    sched = None if schedule == "constant" else wdscale.Schedule(schedule, warmup=0.1, final_lr=0.1)
    mults = sched.multipliers(steps) if sched is not None else None
    lambdas = [wdscale.lr_scheduler(o, sched, steps) for o in opts[:m]] if sched is not None else None

    def batched(trainer):
        def run():
            for s in range(steps):
                if mults is not None:
                    trainer.optimizer.set_multiplier(mults[s] * (1 + 1e-12 * (s % 2)))  # never a cached no-op
                trainer.step(gather(x, idx[s]), gather(y, idx[s]))

        return run

    def sequential():
        for j in range(m):
            model, opt = models[j], opts[j]
            for s in range(steps):
                i = idx[s, j]
                loss = per_model_loss(model(gather(x, i)).unsqueeze(0), gather(y, i).unsqueeze(0))[0]
                loss.item()
                opt.zero_grad()
                loss.backward()
                opt.step()
                if lambdas is not None:
                    lambdas[j].step()

    runs = {name: batched(t) for name, t in paths.items()}
    runs["seq"] = sequential
    scale = {name: 1.0 for name in runs}
    scale["seq"] = k / m
    for fn in runs.values():  # warm-up
        fn()
    best = {name: math.inf for name in runs}
    for _ in range(repeats):  # A/B interleaved
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], (time.perf_counter() - t) * scale[name])
    return {name: k * steps / t for name, t in best.items()}  # model-steps per second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="K=32, width 64 only")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-vmap", action="store_true", help="skip the vmap(functional_call) column")
    ap.add_argument(
        "--schedule", default="constant", choices=wdscale.SCHEDULE_NAMES, help="an lr schedule on both paths"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid = [(32, 64)] if args.quick else [(k, w) for w in (64, 256, 1024) for k in (8, 32, 128)]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, AdamW, MLP {IN}->w->w->{OUT}, batch {BATCH}, "
        f"lr schedule {args.schedule}"
    )
    print(
        f"{'K':>4} {'width':>6} {'seq steps/s':>12} {'bmm steps/s':>12} {'vmap steps/s':>13} "
        f"{'bmm/seq':>8} {'vmap/seq':>9}"
    )
    ratios = {}
    for k, w in grid:
        steps = 5 if args.quick else max(2, min(20, 4096 // (k * max(1, w // 64))))
        seq_models = k if w <= 256 else 8
        r = bench(k, w, steps, 3 if args.quick else args.repeats, seq_models, not args.no_vmap, args.schedule)
        ratios[(k, w)] = r["bmm"] / r["seq"]
        v = r.get("vmap", float("nan"))
        print(
            f"{k:>4} {w:>6} {r['seq']:>12.0f} {r['bmm']:>12.0f} {v:>13.0f} {ratios[(k, w)]:>8.2f} {v / r['seq']:>9.2f}",
            flush=True,
        )
    print(f"speedup_k32_w64={ratios[(32, 64)]:.2f}")


if __name__ == "__main__":
    main()
