"""What a study adds to a run: the same training loop run bare, as a study's function run
(`train_fn`, in a forked process) and as a study's command run (`--command`, a subprocess calling
`wdscale.current_run()`), against the same loop started bare as a subprocess.

Each side trains the same 6 runs (a study needs 2 sizes × 3 settings) one after another on one
thread; sides alternate, repeated; the median per-run difference is wdscale's fixed cost (start,
optimizer build, result, store), and the ratio on a 10 s run is (10 + cost) / 10.

    .venv/bin/python benchmarks/bench_run_overhead.py [--steps 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve()
WIDTHS, SETTINGS = (64, 128), (0.01, 0.1, 1.0)


def make(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def loop(model: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int) -> float:
    """The training both sides run: `steps` AdamW steps on fixed synthetic data."""
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(4096, 64, generator=g), torch.randn(64, 10, generator=g)
    y = (x @ w).argmax(1)
    for i in range(steps):
        idx = torch.arange(i * 64, (i + 1) * 64) % len(x)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(F.cross_entropy(model(x[:512]), y[:512]))


def bare(width: int, setting: float, steps: int) -> float:
    torch.manual_seed(0)
    model = make(width)
    return loop(model, torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=setting), steps, 0)


def script_main(argv: list[str]) -> None:
    """As a command: `--bare WIDTH SETTING STEPS`, or under a study (wdscale.current_run())."""
    torch.set_num_threads(1)
    if argv[0] == "--bare":
        print(f"val_loss={bare(int(argv[1]), float(argv[2]), int(argv[3]))}")
        return
    import wdscale

    run = wdscale.current_run()
    model, opt = run.build(make)
    run.finish(loop(model, opt, run.steps, run.config.seed))


def study(tmp: Path, steps: int, **how) -> None:
    from wdscale.study import Execution, Study

    Study(make, out=tmp / f"s{time.monotonic_ns()}", sizes=list(WIDTHS), rules=["decoupled"],
          settings={"decoupled": list(SETTINGS)}, seeds=1, lr=1e-3, epochs=1, batch_size=64, n_train=64 * steps,
          execution=Execution(workers=1, progress=False), **how).run()  # fmt: skip


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    n = len(WIDTHS) * len(SETTINGS)
    me = [sys.executable, str(HERE)]
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train_fn(run):
        return loop(run.model, run.optimizer, run.steps, run.config.seed)

    sides = {
        "bare, in process": lambda tmp: [bare(w, s, args.steps) for w in WIDTHS for s in SETTINGS],
        "function run": lambda tmp: study(tmp, args.steps, train_fn=train_fn),
        "bare, as a subprocess": lambda tmp: [
            # the environment a command run gets: one OpenMP thread from the start, as the study sets it
            subprocess.run(
                [*me, "--bare", str(w), str(s), str(args.steps)], check=True, capture_output=True, env=one_thread
            )
            for w in WIDTHS
            for s in SETTINGS
        ],
        "command run": lambda tmp: study(tmp, args.steps, command=[*me, "--script"]),
    }
    times: dict[str, list[float]] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for name, side in sides.items():
                times[name].append(timed(lambda side=side: side(Path(d))) / n)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"per run, median of {args.repeats} (6 runs a side, {args.steps} steps, 1 thread, {os.cpu_count()} cores)")
    for k, v in med.items():
        print(f"  {k:24s} {v:6.2f} s")
    for run, base in (("function run", "bare, in process"), ("command run", "bare, as a subprocess")):
        cost = med[run] - med[base]
        print(f"{run}: +{cost:.2f} s a run over {base}; on a 10 s run: ratio {(10 + cost) / 10:.3f}")
        print(f"overhead_{run.split()[0]}_s={cost:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("--bare", "--script"):
        script_main(sys.argv[1:])
    else:
        main()
