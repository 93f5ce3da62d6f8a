"""A training function whose loss is a known bowl in (log lr, log λ) around a known law, and a
Study of it: the tune and Optuna tests' target, trained in milliseconds."""

import math

import torch

import wdscale

LR0, LAM0 = 0.2, 2e-3  # the known law: lr*(w) = LR0 / w, λ*(w) = LAM0 · w (η·λ fixed: AdamW's ridge)
SETTINGS = [float(f"{10 ** (k / 2):.4g}") for k in range(-8, 3)]  # 1e-4 … 10, half-decade steps


def bowl(run) -> float:
    """A training function whose loss is a known bowl in (log lr, log λ) around the law, plus a
    little seed noise; it takes the plan's one step so the run is not flagged."""
    w, c = run.config.width, run.config
    run.optimizer.zero_grad()
    run.optimizer.step()
    noise = 1e-3 * torch.randn(1, generator=torch.Generator().manual_seed(1000 * c.seed + w)).item()
    return 1 + math.log(c.lr * w / LR0) ** 2 + 0.5 * math.log(c.setting / (LAM0 * w)) ** 2 + noise


def study(tmp_path, model=None, **kw):
    args = dict(
        sizes=[16, 64], rules=["decoupled"], settings={"decoupled": SETTINGS}, seeds=1, lr=0.01, lr_decades=2,
        lr_points_per_decade=2, n_train=10, batch_size=10, epochs=1, out=tmp_path / "t",
        execution=wdscale.Execution(workers=1, progress=False),
    )  # fmt: skip
    # a hidden w × w layer: parameters grow ∝ w², as an MLP's do, so a ladder's lower rungs are cheap
    net = lambda w: torch.nn.Sequential(torch.nn.Linear(2, w), torch.nn.ReLU(), torch.nn.Linear(w, w),  # noqa: E731
                                        torch.nn.ReLU(), torch.nn.Linear(w, 2))  # fmt: skip
    return wdscale.Study(model or net, **{"train_fn": bowl, **args, **kw})
