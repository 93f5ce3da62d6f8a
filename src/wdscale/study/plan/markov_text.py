"""Unlimited text for one-pass language-model studies: a character Markov chain fitted to the
Shakespeare training text, sampled as long as a study needs.

The Shakespeare corpus holds about 1M characters, a single pass for a width-16 character
transformer at 80 tokens per parameter; wider models at 20 tokens per parameter need more. A chain
of order k (the next character's distribution given the k before it, counted on the training
text, no smoothing) makes as many tokens as asked, each a plausible next character, and its
entropy rate is the loss floor no model can pass (``MarkovText.entropy``). The training stream and
the validation stream come from different random streams of the same chain, so the validation
set can be as large as the seed noise asks for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class MarkovText:
    """A fitted chain: per seen context (k characters, as one base-V code), its next characters
    and their cumulative probabilities, kept flat (row r's entries sit between ptr[r] and ptr[r + 1])."""

    order: int
    vocab_size: int
    codes: np.ndarray  # (R,) sorted context codes
    ptr: np.ndarray  # (R + 1,)
    nexts: np.ndarray  # (E,) next character ids
    cum: np.ndarray  # (E,) r + cumulative probability within row r: increasing over the whole array
    stationary: np.ndarray  # (R,) the contexts' frequencies in the fitted text (where streams start)
    entropy: float  # nats per character: the chain's entropy rate under those frequencies

    def sample(self, n_tokens: int, seed: int, streams: int = 4096) -> torch.Tensor:
        """n_tokens characters of `streams` independent chains run side by side (each started at a
        context drawn from the fitted frequencies), concatenated stream after stream."""
        rng = np.random.default_rng(seed)
        per = math.ceil(n_tokens / streams)
        row = rng.choice(len(self.codes), size=streams, p=self.stationary)
        out = np.empty((streams, per), dtype=np.int64)
        tail = self.vocab_size ** (self.order - 1)
        for t in range(per):
            u = rng.random(streams)
            ch = self.nexts[np.searchsorted(self.cum, row + u, side="right").clip(max=len(self.nexts) - 1)]
            out[:, t] = ch
            code = (self.codes[row] % tail) * self.vocab_size + ch
            nxt = np.searchsorted(self.codes, code).clip(max=len(self.codes) - 1)
            # a context seen only at the text's very end has no successor row: restart that stream
            lost = self.codes[nxt] != code
            if lost.any():
                nxt[lost] = rng.choice(len(self.codes), size=int(lost.sum()), p=self.stationary)
            row = nxt
        return torch.from_numpy(out.reshape(-1)[:n_tokens].copy())


def fit_markov(ids: torch.Tensor, vocab_size: int, order: int) -> MarkovText:
    """The order-`order` chain of a token stream: counts of (context, next) over the stream.

    Raises:
        ValueError: an order below 1 or one the stream is too short for.
    """
    if order < 1 or len(ids) <= order:
        raise ValueError(f"order={order!r}: a whole number from 1 to {len(ids) - 1} for a stream of {len(ids)}")
    x = ids.numpy().astype(np.int64)
    code = np.zeros(len(x) - order, dtype=np.int64)
    for i in range(order):
        code = code * vocab_size + x[i : len(x) - order + i]
    pair = code * vocab_size + x[order:]
    pairs, counts = np.unique(pair, return_counts=True)
    ctx, nexts = pairs // vocab_size, pairs % vocab_size
    codes, start, per_row = np.unique(ctx, return_index=True, return_counts=True)
    ptr = np.append(start, len(pairs))
    row_of = np.repeat(np.arange(len(codes)), per_row)
    totals = np.add.reduceat(counts, start)
    prob = counts / totals[row_of]
    cum = np.cumsum(prob)
    cum = cum - np.repeat(np.append(0.0, cum[ptr[1:-1] - 1]), per_row)  # restart at each row
    cum[ptr[1:] - 1] = 1.0  # exact row ends: no draw falls past its row
    stationary = totals / totals.sum()
    entropy = float(-(stationary[row_of] * prob * np.log(prob)).sum())
    return MarkovText(order, vocab_size, codes, ptr, nexts, row_of + cum, stationary, entropy)
