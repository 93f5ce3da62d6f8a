"""A user's training script for the command-run tests: `python script_cases.py CASE`.

ok: trains with wdscale.current_run(); crash: prints and exits 3; hang: starts a child that
sleeps and sleeps itself (its pids written to $PIDS_FILE); no_loss: trains, reports nothing;
slow: sleeps a second, then trains (a driver can be killed mid-study); bowl: one step, then a loss
that is a known bowl in (log lr, log λ) around lr* = 0.2 / width, λ* = 0.002 · width."""

import os
import subprocess
import sys
import time

if sys.argv[1:2] == ["hang"]:  # before torch loads: the pids are written at once, whatever the load
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    with open(os.environ["PIDS_FILE"], "a") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(120)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def make(width: int) -> nn.Module:
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))


def train(report: bool = True) -> None:
    import wdscale

    run = wdscale.current_run()
    model, opt = run.build(make)
    scheduler = run.lr_scheduler()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(run.config.n_train, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    for _ in range(run.config.epochs):
        for i in range(0, len(x), run.config.batch_size):
            loss = F.cross_entropy(model(x[i : i + run.config.batch_size]), y[i : i + run.config.batch_size])
            opt.zero_grad()
            loss.backward()
            opt.step()
            scheduler.step()
        run.report(run.steps, loss.item())
    print(f"group lrs: {sorted(g['lr'] for g in opt.param_groups)}", flush=True)
    if report:
        run.finish(loss.item())


if __name__ == "__main__":
    case = sys.argv[1]
    if case == "crash":
        print("loading data ... boom: the data path does not exist", flush=True)
        sys.exit(3)
    if case == "bowl":
        import math

        import wdscale

        run = wdscale.current_run()
        model, opt = run.build(make)
        opt.zero_grad()
        opt.step()
        c = run.config
        run.finish(1 + math.log(c.lr * c.width / 0.2) ** 2 + 0.5 * math.log(c.setting / (0.002 * c.width)) ** 2)
        sys.exit(0)
    if case == "slow":
        with open(os.environ["PIDS_FILE"], "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
    train(report=case != "no_loss")
