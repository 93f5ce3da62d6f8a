"""The GPU check, ready to run on a machine with CUDA (minutes): a small study on `cuda` with
concurrent runs (function and command runs, each on its own GPU share), the batched engine on the
GPU against sequential runs, and a 2-GPU-per-run torchrun placement where there are ≥ 2 GPUs —
printing what ran where. On a machine without CUDA it says so and checks nothing.

    .venv/bin/python benchmarks/gpu_check.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))


def record(run) -> float:
    """A function run: where it ran, and a short training on its device."""
    from train_script import digits

    x, y, xv, yv = (t.to(run.device) for t in digits(600))
    for i in range(0, 600, 60):
        loss = torch.nn.functional.cross_entropy(run.model(x[i : i + 60]), y[i : i + 60])
        run.optimizer.zero_grad()
        loss.backward()
        run.optimizer.step()
    name = torch.cuda.get_device_name(run.device)
    print(f"  function run width={run.config.width} on CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
          f"({name}), pid {os.getpid()}", flush=True)  # fmt: skip
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(run.model(xv), yv))


def main() -> None:
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from train_script import make_model

    from wdscale.study import Execution, Study, StudyPlan, run_study
    from wdscale.study.run.placement import visible_gpus

    gpus = visible_gpus()
    if not torch.cuda.is_available() or not gpus:
        print("gpu_check: no CUDA GPU visible here: nothing checked (ran on a GPU: no)")
        return
    print(f"gpu_check: {len(gpus)} GPU(s) visible: {', '.join(gpus)}; torch {torch.__version__}")
    common = dict(sizes=[32, 64], rules=["decoupled", "mup"], seeds=1, decades=1.0, points_per_decade=2, lr=1e-2,
                  epochs=1, batch_size=60, n_train=600)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        print("1. function runs, two per GPU (gpus_per_run=0.5):")
        t = time.perf_counter()
        s = Study(make_model, train_fn=record, out=out / "fn", **common,
                  execution=Execution(device="cuda", gpus_per_run=0.5, progress=False))  # fmt: skip
        s.run()
        df = s.results()
        print(f"  {len(df)} runs, {df['status'].value_counts().to_dict()}, {time.perf_counter() - t:.1f} s")

        print("2. command runs (examples/train_script.py), one per GPU:")
        t = time.perf_counter()
        s = Study(make_model, command=[sys.executable, str(ROOT / "examples" / "train_script.py")], out=out / "cmd",
                  **common, execution=Execution(device="cuda", gpus_per_run=1, progress=False))  # fmt: skip
        s.run()
        df = s.results()
        print(f"  {len(df)} runs, {df['status'].value_counts().to_dict()}, {time.perf_counter() - t:.1f} s")

        print("3. the batched engine on the GPU against sequential runs (quick preset, widths 32/64):")
        plan = StudyPlan(task="mnist1d_mlp", sizes=[32, 64], rules=["sum", "decoupled"], seeds=2, epochs=5)
        times = {}
        for batch in (True, False):
            t = time.perf_counter()
            run_study(plan, out / f"engine-{batch}", execution=Execution(device="cuda", batch=batch, progress=False))
            times[batch] = time.perf_counter() - t
        print(f"  batched {times[True]:.1f} s, sequential {times[False]:.1f} s: ratio {times[False] / times[True]:.2f}")

        if len(gpus) >= 2:
            print("4. torchrun with 2 processes per run on 2 GPUs (gpus_per_run=2):")
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                       str(ROOT / "examples" / "train_script.py")]  # fmt: skip
            s = Study(make_model, command=command, out=out / "ddp", **common,
                      execution=Execution(device="cuda", gpus_per_run=2, progress=False))  # fmt: skip
            s.run()
            df = s.results()
            print(f"  {len(df)} runs, {df['status'].value_counts().to_dict()}")
        else:
            print("4. torchrun on 2 GPUs per run: skipped (1 GPU here)")
    print("gpu_check: done (ran on a GPU: yes)")


if __name__ == "__main__":
    main()
