"""The Markov-chain text of the one-pass language-model task: fitted counts, samples that follow
them, the entropy floor by hand, and the task's windows."""

import math

import numpy as np
import pytest
import torch

from wdscale.errors import WdscaleError
from wdscale.study.plan.markov_text import fit_markov
from wdscale.study.plan.tasks import MARKOV_ORDER, get_task, load_markov_text, markov_chain, shakespeare_vocab


def test_fitted_probabilities_and_entropy_worked_by_hand():
    # order 1 over "aab" repeated: after a, a or b equally often; after b, always a
    ids = torch.tensor([0, 0, 1] * 50)
    m = fit_markov(ids, vocab_size=2, order=1)
    assert list(m.codes) == [0, 1]
    rows = {int(c): (m.nexts[m.ptr[r] : m.ptr[r + 1]].tolist()) for r, c in enumerate(m.codes)}
    assert rows == {0: [0, 1], 1: [0]}
    # context frequencies: a 2/3, b 1/3; entropy rate = 2/3 · ln 2 (b's row is certain)
    assert m.stationary == pytest.approx([2 / 3, 1 / 3], abs=0.01)
    assert m.entropy == pytest.approx(2 / 3 * math.log(2), abs=0.01)


def test_samples_follow_the_fitted_transitions():
    rng = np.random.default_rng(0)
    # order 2 over a random stream of 3 symbols with skewed transitions
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    x = [0]
    for _ in range(30_000):
        x.append(int(rng.choice(3, p=p[x[-1]])))
    m = fit_markov(torch.tensor(x), vocab_size=3, order=2)
    s = m.sample(64 * 1000, seed=1, streams=64).numpy().reshape(64, -1)
    # transitions within each stream (streams are independent chains): from the previous symbol
    prev, nxt = s[:, :-1].ravel(), s[:, 1:].ravel()
    for a in range(3):
        freq = np.bincount(nxt[prev == a], minlength=3) / (prev == a).sum()
        assert freq == pytest.approx(p[a], abs=0.03)
    assert len(m.sample(1001, seed=2, streams=10)) == 1001


def test_a_bad_order_is_one_error():
    with pytest.raises(ValueError, match="order=0"):
        fit_markov(torch.tensor([0, 1, 0]), 2, 0)


def test_the_task_samples_independent_windows_with_the_chains_floor():
    chain = markov_chain()
    assert chain.order == MARKOV_ORDER and 0.9 < chain.entropy < 1.6  # nats a character
    d = load_markov_text(0, n_pool=64, n_val=32)
    assert d.x_train.shape == (64, 64) and d.x_val.shape == (32, 64) and d.n_classes == len(shakespeare_vocab())
    assert torch.equal(d.x_train[:, 1:], d.y_train[:, :-1])  # targets are the next characters
    again = load_markov_text(3, n_pool=64, n_val=32)  # a seed reorders the windows, never the validation set
    assert torch.equal(again.x_val, d.x_val) and not torch.equal(again.x_train, d.x_train)
    assert sorted(map(tuple, again.x_train.tolist())) == sorted(map(tuple, d.x_train.tolist()))
    assert not any(torch.equal(v, t) for v in d.x_val[:8] for t in d.x_train)  # another stream
    assert get_task("markov_char").load(0, n_pool=64, n_val=32).n_train == 64
    with pytest.raises(WdscaleError, match="n_val=0"):
        load_markov_text(0, n_val=0)
