"""cost.search_cost on a hand-built study whose every number is worked out below."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wdscale.study.analysis.cost import default_sizes, search_cost

GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
# mean loss per setting: the proxy's best is 1e-2, the target's best is 1e-1
LOSS = {16: [3.0, 2.0, 1.0, 2.0, 3.0], 64: [2.5, 1.8, 1.1, 1.3, 2.0], 256: [2.0, 1.5, 1.2, 1.0, 1.1]}


def study(sizes=(16, 64, 256), grid=GRID, diverge_target_top=False) -> pd.DataFrame:
    rows = []
    for size in sizes:
        for lam, loss in zip(grid, LOSS[size]):
            for seed in (0, 1):
                diverged = diverge_target_top and size == 256 and lam == grid[-1] and seed == 1
                rows.append(
                    dict(
                        task="toy",
                        optimizer="adamw",
                        rule="sum",
                        size_axis="width",
                        size=size,
                        setting=lam,
                        seed=seed,
                        status="diverged" if diverged else "ok",
                        # seeds ±0.1 around the mean: the mean is exactly LOSS
                        val_loss=np.nan if diverged else loss + (0.1 if seed else -0.1),
                        wall_time=size / 16,
                        steps=10,
                        batch_size=4,
                        width=size,
                        depth=1,
                        n_params=size**2,
                    )
                )
    return pd.DataFrame(rows)


def test_transfer_vs_sweep_worked_by_hand():
    (c,) = search_cost(study())
    assert (c.proxy_size, c.target_size, c.n_settings) == (16, 256, 5)
    assert c.proxy_setting == 1e-2 and c.sweep_setting == 1e-1
    assert c.transfer_loss == pytest.approx(1.2) and c.sweep_loss == pytest.approx(1.0)
    assert c.regret == pytest.approx(0.2)
    # one seed: 5 proxy runs of 1 s + one target run of 16 s, vs 5 target runs of 16 s
    assert c.transfer_seconds == pytest.approx(21.0) and c.sweep_seconds == pytest.approx(80.0)
    assert c.seconds_saved == pytest.approx(80 / 21)
    # P × samples seen, samples = 10 steps × batch 4
    assert c.transfer_param_samples == pytest.approx(5 * 16**2 * 40 + 256**2 * 40)
    assert c.sweep_param_samples == pytest.approx(5 * 256**2 * 40)
    assert c.params_saved == pytest.approx(5 * 256**2 / (5 * 16**2 + 256**2))


def test_a_diverged_seed_makes_its_setting_unusable_but_its_time_counts():
    (c,) = search_cost(study(diverge_target_top=True))
    assert c.sweep_loss == pytest.approx(1.0) and c.sweep_setting == 1e-1
    assert c.sweep_seconds == pytest.approx(80.0)
    (unknown,) = search_cost(study().drop(columns="n_params"))  # runs that did not record their size
    assert np.isnan(unknown.transfer_param_samples) and unknown.transfer_seconds == c.transfer_seconds


def test_named_sizes_and_frame():
    (c,) = search_cost(study(), proxy_size=64, target_size=256)
    assert c.proxy_setting == 1e-2 and c.transfer_seconds == pytest.approx(5 * 4 + 16)
    assert c.regret == pytest.approx(0.2) and c.rule == "sum"


def test_default_proxy_is_at_most_a_sixteenth_of_the_target():
    assert default_sizes([16, 32, 64, 128, 256, 512, 1024]) == (64, 1024)
    assert default_sizes([16, 64]) == (16, 64)  # none small enough: the smallest


def test_bad_sizes_and_mismatched_grids_are_named():
    with pytest.raises(ValueError, match=r"proxy_size=32 is not a size of series .*sizes: \[16, 64, 256\]"):
        search_cost(study(), proxy_size=32)


def test_a_proxy_setting_the_target_never_trained_is_not_measured():
    # a grid refined per size: the target has no run at the proxy's best setting. Not interpolated,
    # and no longer an error (it was one when every study shared one grid): the report still builds.
    shifted = study()
    shifted.loc[shifted["size"] == 256, "setting"] *= 3
    (c,) = search_cost(shifted)
    assert c.reason == "not measured: the target 256 was not run at the proxy's best setting 0.01"
    assert np.isnan(c.transfer_loss) and np.isnan(c.regret) and np.isnan(c.transfer_seconds)
    assert c.sweep_loss == pytest.approx(1.0) and c.sweep_setting == pytest.approx(0.3)
    (ok,) = search_cost(study())
    assert ok.reason == ""
