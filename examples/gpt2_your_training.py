"""A study of a Hugging Face GPT-2 family across width, trained by *your* loop: a DataLoader over
Shakespeare's characters, warmup + cosine, gradient clipping. wdscale builds each run's model and
the rule's per-group optimizer; `train` does the rest and returns the final validation loss.

From Python (`python examples/gpt2_your_training.py` runs a small study, minutes on 2 cores):

    study = wdscale.Study(gpt2, train_fn=train, sizes=[16, 32, 64], rules=["decoupled", "mup"], ...)
    study.run(); study.refine(); study.report(); print(study.advise(target=256))

or from the command line (the same two functions):

    wdscale study run --model examples/gpt2_your_training.py:gpt2 \\
        --train examples/gpt2_your_training.py:train --sizes 16,32,64 --rules decoupled,mup \\
        --n-train 2048 --batch-size 32 --epochs 2 --lr 0.003 --schedule cosine --warmup 0.1 --final-lr 0.1 \\
        --out gpt2-study
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
import transformers
from torch.utils.data import DataLoader, TensorDataset

import wdscale
from wdscale.study.plan.tasks import get_task

logging.getLogger("transformers").setLevel(logging.ERROR)  # tiny configs: no warnings about them

CONTEXT = 64  # the shakespeare task's windows: 64 characters in, the next 64 out


def _tokens():
    """Shakespeare's eight tragedies as character ids (the `shakespeare` package's texts, offline)."""
    return get_task("shakespeare_char").load(0)


def gpt2(width: int) -> transformers.GPT2LMHeadModel:
    """Your model family: a 2-layer GPT-2 whose width is the study's size (4 heads)."""
    vocab = _tokens().n_classes
    config = transformers.GPT2Config(
        n_embd=width, n_layer=2, n_head=4, vocab_size=vocab, n_positions=CONTEXT, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config)


@torch.no_grad()
def _val_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    logits = model(input_ids=x).logits
    model.train()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()


def train(run: wdscale.study.Run) -> float:
    """Your training loop. `run` brings the model, the rule's optimizer and the plan (batch size,
    epochs, schedule); the data, the loss, clipping and evaluation are yours."""
    data = _tokens()
    n = run.config.n_train
    loader = DataLoader(
        TensorDataset(data.x_train[:n], data.y_train[:n]),
        batch_size=run.config.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(run.config.seed),  # the batch order follows the run's seed
    )
    scheduler = run.lr_scheduler()  # warmup + cosine from the plan, the rule's group ratios kept
    x_val, y_val = data.x_val.to(run.device), data.y_val.to(run.device)
    step = 0
    for _ in range(run.config.epochs):
        for x, y in loader:
            logits = run.model(input_ids=x.to(run.device)).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.to(run.device).reshape(-1))
            if not math.isfinite(loss.item()):
                return float("nan")  # diverged: wdscale records it so
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
            run.optimizer.step()
            scheduler.step()
            step += 1
        run.report(step, _val_loss(run.model, x_val, y_val))
    return _val_loss(run.model, x_val, y_val)


def train_with_trainer(run: wdscale.study.Run) -> float:
    """The same run through `transformers.Trainer`: hand it the rule's optimizer and the plan's
    schedule (`optimizers=(run.optimizer, run.lr_scheduler())`) and the plan's steps."""
    import tempfile

    data = _tokens()
    n = run.config.n_train
    train_set = [{"input_ids": x, "labels": x} for x in data.x_train[:n]]  # GPT-2 shifts the labels itself
    args = transformers.TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="wdscale-trainer-"),
        max_steps=run.steps,
        per_device_train_batch_size=run.config.batch_size,
        max_grad_norm=1.0,
        seed=run.config.seed,
        data_seed=run.config.seed,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=run.device.type == "cpu",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=run.model, args=args, train_dataset=train_set, optimizers=(run.optimizer, run.lr_scheduler())
    )
    trainer.train()
    return _val_loss(run.model, data.x_val.to(run.device), data.y_val.to(run.device))


def study(out: str = "gpt2-study", sizes: Optional[list[int]] = None, **kw) -> wdscale.Study:
    """The study this file's `__main__` runs (a few minutes on 2 cores)."""
    args = dict(
        sizes=sizes or [16, 32, 64], rules=["decoupled", "mup"], seeds=2, decades=2.0, points_per_decade=2,
        lr=3e-3, epochs=2, batch_size=32, n_train=2048, schedule="cosine", warmup=0.1, final_lr=0.1, out=out,
        name="gpt2_shakespeare",
    )  # fmt: skip
    return wdscale.Study(gpt2, **{"train_fn": train, **args, **kw})


if __name__ == "__main__":
    s = study()
    s.run()
    s.refine(seeds_at="ends")
    s.report()
    print(s.advise(target=256))
