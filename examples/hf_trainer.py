"""Hand wdscale's optimizer to a `transformers` Trainer: `Trainer(..., optimizers=(opt, None))`.

The Trainer then builds its own lr schedule around the optimizer; torch schedulers scale each
group's lr by the same factor, so the rule's per-group ratios (μP's lr/m on hidden matrices) and
its per-group weight_decay survive. Run: `python examples/hf_trainer.py` (a few seconds on a CPU).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_models import gpt2  # noqa: E402

import wdscale  # noqa: E402


def main(width: int = 64, base_width: int = 32, steps: int = 6, out_dir: str | None = None) -> Trainer:
    torch.manual_seed(0)
    model, base = gpt2(width), gpt2(base_width)  # base: the width where λ was tuned
    opt = wdscale.optimizer(model, "adamw", rule="mup", lr=3e-3, weight_decay=0.1, base=base)
    tokens = torch.randint(0, 97, (16, 16))  # 16 sequences of 16 tokens: memorised in a few steps
    train = [{"input_ids": t, "labels": t} for t in tokens]
    args = TrainingArguments(
        output_dir=out_dir or tempfile.mkdtemp(prefix="wdscale-hf-"),
        max_steps=steps,
        per_device_train_batch_size=16,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        lr_scheduler_type="constant",
    )
    trainer = Trainer(model=model, args=args, train_dataset=train, optimizers=(opt, None))
    trainer.train()
    return trainer


if __name__ == "__main__":
    trainer = main()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} steps")
    for g in trainer.optimizer.param_groups:
        print(f"  {g['kind']:6s}  lr {g['lr']:.3g}  weight_decay {g['weight_decay']:.3g}  ({len(g['params'])} tensors)")
