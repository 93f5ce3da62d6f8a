"""Tiny Hugging Face `transformers` models built from configs (random weights, nothing downloaded),
with a width knob: what `wdscale explain --model examples/hf_models.py:gpt2` and the examples use."""

from __future__ import annotations

import logging

import transformers

logging.getLogger("transformers").setLevel(logging.ERROR)  # tiny configs: no warnings about them


def gpt2(width: int = 32) -> transformers.GPT2LMHeadModel:
    """GPT-2 (Conv1D layers stored (in, out), embedding tied to the readout), 2 layers, 4 heads."""
    return transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            n_embd=width, n_layer=2, n_head=4, vocab_size=97, n_positions=32, bos_token_id=0, eos_token_id=0
        )
    )


def vit(width: int = 32) -> transformers.ViTForImageClassification:
    """ViT (raw class token 1×1×d and position embedding 1×T×d, patch Conv2d), 16×16 images, 4×4 patches."""
    return transformers.ViTForImageClassification(
        transformers.ViTConfig(
            hidden_size=width,
            intermediate_size=4 * width,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=16,
            patch_size=4,
            num_labels=5,
        )
    )
