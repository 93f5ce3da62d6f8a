"""A toy task shared by the trainer and engine tests: 100 random samples, 8 features, 4 classes
(the class of a sample is the argmax of a fixed linear map of it, so a model can learn it)."""

import pytest
import torch

from wdscale.study.plan.config import RunConfig, TaskData
from wdscale.study.plan.models import MLP


def toy_data() -> TaskData:
    g = torch.Generator().manual_seed(0)
    x_train, x_val, w = (
        torch.randn(100, 8, generator=g),
        torch.randn(40, 8, generator=g),
        torch.randn(8, 4, generator=g),
    )
    return TaskData(x_train, (x_train @ w).argmax(1), x_val, (x_val @ w).argmax(1), n_classes=4)


def mlp_fn(width: int, depth: int) -> MLP:
    return MLP(8, 4, width, depth)


def toy_config(**kw) -> RunConfig:
    base = dict(
        task="toy",
        size_axis="width",
        size=16,
        width=16,
        depth=2,
        n_train=90,
        batch_size=16,
        base_width=8,
        base_depth=2,
        rule="decoupled",
        setting=1e-2,
        optimizer="adamw",
        lr=1e-2,
        epochs=3,
        seed=0,
    )
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny ops gain nothing from threads, and on a busy machine each parallel op can wait a whole
    scheduler slice for its second thread (~100x slower); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# a tiny real study: the digits MLP at widths 8 and 32, two rules × 3 settings × 2 seeds, 2 epochs
TINY = dict(
    task="digits_mlp", sizes=[8, 32], rules=["sum", "decoupled"], seeds=2, decades=1.0, points_per_decade=2,
    epochs=2, depth=1,
)  # fmt: skip
# the same study on the command line with one rule (12 runs), in one process
TINY_FLAGS = (
    "--task digits_mlp --sizes 8,32 --rules sum --seeds 2 --decades 1 --points-per-decade 2 --epochs 2 --depth 1 "
    "--workers 1 --no-progress"
).split()
