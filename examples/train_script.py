"""Your training script as a study's unit of work: argparse flags, a nanoGPT-like loop, and
`wdscale.current_run()` for what the study decides (the model at the run's size, the rule's
per-group optimizer, the schedule) — the same script runs alone, under a study, and under torchrun.

A study runs it once per run, as a subprocess with its own log (minutes on 2 cores):

    wdscale study run --out script-study --model examples/train_script.py:make_model \\
        --command "python examples/train_script.py --eval-every 0" --sizes 16,32,64 --rules decoupled,mup \\
        --n-train 1200 --batch-size 64 --epochs 4 --lr 0.01 --schedule cosine --warmup 0.1

Two processes per run with DDP (gloo on CPU, nccl on GPUs; add --gpus-per-run 2 on a GPU machine):

    ... --command "torchrun --standalone --nproc-per-node 2 examples/train_script.py"

Alone (no study), it trains one model with its own flags: `python examples/train_script.py --alone`.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

import wdscale


def make_model(width: int) -> nn.Module:
    """The model family the study scales: an MLP on 8×8 digit images."""
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))


def digits(n_train: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn's digits (shipped with the package): n_train to train on, the last 400 to validate."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16, torch.tensor(y)
    return x[:n_train], y[:n_train], x[-400:], y[-400:]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    loss = F.cross_entropy(model(x), y).item()
    model.train()
    return loss


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-every", type=int, default=0, help="steps between validation reports (0: each epoch)")
    p.add_argument("--alone", action="store_true", help="train one model without a study (width 64, AdamW)")
    args = p.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:  # torchrun: every rank builds the same model and optimizer from the run's seed
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0

    if args.alone:
        model = make_model(64)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        n_train, batch_size, epochs, seed, device = 1200, 64, 4, 0, torch.device("cpu")
        scheduler, report, finish = None, lambda step, loss: None, lambda loss: print(f"val_loss={loss:.4f}")
    else:
        run = wdscale.current_run()
        model, opt = run.build(make_model)
        c = run.config
        n_train, batch_size, epochs, seed, device = c.n_train, c.batch_size, c.epochs, c.seed, run.device
        scheduler, report, finish = run.lr_scheduler(), run.report, run.finish
        print(f"rank {rank} group lrs: {[round(g['lr'], 12) for g in opt.param_groups]}", flush=True)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)

    x, y, xv, yv = (t.to(device) for t in digits(n_train))
    order = torch.Generator().manual_seed(seed)  # the run's seed: the same batches on every rank
    step, val = 0, float("nan")
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size][rank::world]  # each rank its share of the batch
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            if args.eval_every and step % args.eval_every == 0:
                report(step, evaluate(model, xv, yv))
        val = evaluate(model, xv, yv)
        if not args.eval_every:
            report(step, val)
    finish(val)
    if world > 1:  # every rank done before the group goes: gloo aborts a rank torn down mid-exchange
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        # on a loaded CPU machine gloo's threads still aborted 1 rank exit in ~20 ("terminate called
        # without an active exception") after all work was done: leave without C++'s static teardown
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
