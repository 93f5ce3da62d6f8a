"""Step time of an optimizer built by `wdscale.optimizer` vs the same torch optimizer built by hand.

`wdscale.optimizer` returns a stock torch optimizer, so the only possible cost is its parameter
groups (one per kind and lr/λ). Two references, both the same torch class: "same groups" is built
by hand from the same group dicts (goal ratio <= 1.02: the rules cost nothing per step), "one
group" is `cls(model.parameters(), ...)`, so that ratio is the price of per-group lr/λ itself.
All three step identical copies of the model with identical gradients, interleaved in rotating
order; the median per-step time of each is compared.

    .venv/bin/python benchmarks/bench_optimizer.py [--threads N] [--steps 200]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import wdscale
from wdscale.study.plan.models import MLP

CASES = [  # (optimizer name, rule, torch class built by hand)
    ("adamw", "decoupled", torch.optim.AdamW),
    ("adam", "sum", torch.optim.Adam),
    ("sgd", "decoupled", wdscale.SGDW),
    ("sgd", "sum", torch.optim.SGD),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"median step time, {args.steps} interleaved steps"
    )
    print(
        f"{'model':<9} {'optimizer':<34} {'wdscale us':>10} {'same groups':>11} {'one group':>10} "
        f"{'ratio same':>10} {'ratio one':>9}"
    )
    for width in (64, 1024):
        torch.manual_seed(0)
        model = MLP(40, 10, width, 2)
        for name, rule, cls in CASES:
            extra = {"momentum": 0.9} if name == "sgd" else {}
            copies = [copy.deepcopy(model) for _ in range(3)]
            ours = wdscale.optimizer(copies[0], name, rule=rule, lr=1e-3, weight_decay=0.1, **extra)
            assert type(ours) is cls, (type(ours), cls)
            same = cls(
                wdscale.param_groups(copies[1], rule=rule, lr=1e-3, weight_decay=0.1, optimizer=name), lr=1e-3, **extra
            )
            one = cls(copies[2].parameters(), lr=1e-3, weight_decay=0.1, **extra)
            for ps in zip(*(c.parameters() for c in copies)):
                g = torch.randn_like(ps[0])
                for p in ps:
                    p.grad = g.clone()
            opts = {"ours": ours, "same": same, "one": one}
            times: dict[str, list[float]] = {key: [] for key in opts}
            keys = list(opts)
            for step in range(args.steps + 10):
                for key in keys[step % 3 :] + keys[: step % 3]:  # rotate who goes first
                    t = time.perf_counter()
                    opts[key].step()
                    if step >= 10:  # warm-up
                        times[key].append(time.perf_counter() - t)
            med = {key: statistics.median(v) * 1e6 for key, v in times.items()}
            label = f"{name}/{rule} ({cls.__name__}, {len(ours.param_groups)} groups)"
            print(
                f"{'w=' + str(width):<9} {label:<34} {med['ours']:>10.1f} {med['same']:>11.1f} {med['one']:>10.1f} "
                f"{med['ours'] / med['same']:>10.3f} {med['ours'] / med['one']:>9.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
