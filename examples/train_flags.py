"""A training script that does not import wdscale: the study fills the run's knobs into its flags and
reads the loss from its last line `val_loss=<float>` (as W&B Sweeps and Syne Tune run a script).

    wdscale study run --out flags-study --model examples/train_script.py:make_model \\
        --command "python examples/train_flags.py --width {width} --lr {lr} --wd {weight_decay} --decay {decay} \\
                   --seed {seed} --epochs {epochs} --batch-size {batch_size} --n-train {n_train}" \\
        --sizes 16,32,64 --rules decoupled,sum --n-train 1200 --batch-size 64 --epochs 4 --lr 0.01

Only rules that give every group one (lr, λ) can run this way (`decoupled`, `sum`, `mean`,
`timescale`, ...): the study refuses a per-layer rule (`mup`, ...) before any run. `{weight_decay}`
is the λ the rule gives the decayed matrices at the run's size, and `{decay}` how to apply it
(decoupled: AdamW; coupled: Adam's L2, as `sum` and `mean` mean it); biases are not decayed (the
study's default, `--decay-vectors` off). The lr is constant here: give the study no --schedule.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from train_script import digits, evaluate, make_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--wd", type=float, required=True)
    p.add_argument("--decay", choices=["decoupled", "coupled"], default="decoupled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--n-train", type=int, default=1200)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    model = make_model(args.width)
    matrices = [q for q in model.parameters() if q.ndim >= 2]
    vectors = [q for q in model.parameters() if q.ndim < 2]
    adam = torch.optim.AdamW if args.decay == "decoupled" else torch.optim.Adam
    opt = adam([{"params": matrices, "weight_decay": args.wd}, {"params": vectors, "weight_decay": 0.0}], lr=args.lr)
    x, y, xv, yv = digits(args.n_train)
    order = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), args.batch_size):
            idx = perm[i : i + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    print(f"val_loss={evaluate(model, xv, yv):.6f}")


if __name__ == "__main__":
    main()
