import os
from pathlib import Path

import pytest
import torch

from ednas._perf import set_threads

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_SAMPLE = Path(os.environ.get("EDNAS_CIFAR_SAMPLE", SHARED_DATA / "cifar10"))

# a small space with every kind of choice: kernels, expansion, skip
TINY_SPACE = "stem_k11_m1_c8_s1 | ir_k3.5.7_e1_c8 | ir_k3.5.7_e3.6_c16_s2_r2_skip | ir_k3.5_e2_c24_s2 | head_c32"


def pytest_configure(config):
    set_threads(2)


@pytest.fixture
def cifar_dir():
    if not (CIFAR_SAMPLE / "data_batch_1").is_file():
        pytest.skip(f"CIFAR-10 sample not found at {CIFAR_SAMPLE} (shared data is absent on users' machines)")
    return CIFAR_SAMPLE


#: the small fixed network the deploy tests export (every kernel size up to 5, a stride-2 stem)
TINY_NET = "stem_k11_m1_c8_s2 | ir_k3_e2_c16_s2 | ir_k5_e2_c24_s1 | head_c32"


@pytest.fixture(scope="session")
def tiny_digits_model(tmp_path_factory):
    """``model.pt`` of :data:`TINY_NET` trained 4 epochs on digits: a model worth quantizing (top-1 above 80 %)."""
    from ednas.data import load_data
    from ednas.train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny")
    m = train(TrainConfig(epochs=4, batch_size=32), out, arch=TINY_NET, data=load_data("digits"), progress=False, tensorboard=False)
    assert m["top1"] > 80, m
    return out / "model.pt"


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    return 0


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine parameters (folding must use them)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def random_arch(rng, fixed: bool = True, branches: bool | None = None) -> str:
    """A random valid arch string (fixed, or a space with choices)."""
    import random as _r

    r = rng if isinstance(rng, _r.Random) else _r.Random(rng)
    stem = f"stem_k{r.choice([11, 13, 15, 17])}_m{r.choice([1, 2])}_c{r.choice([8, 12])}_s{r.choice([1, 2])}"
    stages = []
    for _ in range(r.randint(1, 3)):
        if fixed:
            k = str(r.choice([1, 3, 5, 7, 9]))
            e = str(r.choice([1, 2, 3, 6]))
        else:
            k = ".".join(map(str, sorted(r.sample([3, 5, 7, 9], r.randint(1, 3)))))
            e = r.choice(["2", "3.6", "1"])
        s = r.choice([1, 2])
        rep = r.randint(1, 2)
        b = f"ir_k{k}_e{e}_c{r.choice([8, 16])}_s{s}_r{rep}"
        if not fixed and rep > 1 and r.random() < 0.5:
            b += "_skip"
        if (branches if branches is not None else r.random() < 0.5):
            b += "_acb"
        stages.append(b)
    head = f"head_c{r.choice([0, 32])}"
    return " | ".join([stem] + stages + [head])
