"""The paper-scale ``imagenet`` space searched on the ``tda2x`` target, as the paper's experiment runs."""

import json

import numpy as np
import pytest

from ednas import build_model, parse_arch, preset
from ednas.cli import main
from ednas.latency import LatencyModel, build_table
from ednas.nn.macs import count_macs
from tests.conftest import CIFAR_SAMPLE


def _search_and_train(tmp_path, data: list[str], epochs: int, batch: int) -> tuple[dict, dict]:
    out = tmp_path / "search"
    assert main(["search", "--out", str(out), "--space", "imagenet", *data, "--target", "tda2x", "--budget-frac", "0.5",
                 "--epochs", str(epochs), "--warmup-epochs", "1", "--batch-size", str(batch), "--paths", "1", "--workers", "0",
                 "--no-progress", "--no-tensorboard", "--no-measure"]) == 0
    s = json.loads((out / "search.json").read_text())
    assert main(["train", "--arch", str(out / "arch.yaml"), *data, "--epochs", "1", "--batch-size", str(batch), "--workers", "0",
                 "--out", str(tmp_path / "train"), "--no-progress", "--no-tensorboard"]) == 0
    return s, json.loads((tmp_path / "train" / "metrics.json").read_text())


def test_imagenet_space_search_on_tda2x_at_half_budget_derives_a_network_within_it(tmp_path):
    # the fast variant: the same space, target and budget fraction at 32 px on synthetic images
    s, m = _search_and_train(tmp_path, ["--data", "synthetic:classes=4,n=40,size=32"], epochs=2, batch=16)
    assert s["target"] == "tda2x" and s["budget_frac"] == 0.5
    assert s["min_ms"] < s["budget_ms"] < s["max_ms"]
    assert s["predicted_latency_ms"] <= s["budget_ms"]
    arch = parse_arch(s["arch"])
    assert arch.is_fixed and arch.stem.kernel == 11
    assert m["epochs"] == 1 and m["arch"] == s["arch"]


def _image_folder(root, size: int = 224) -> str:
    """3 classes x (8 train, 2 val) images: the CIFAR-10 sample upscaled when it is there, else synthetic."""
    from PIL import Image

    rng = np.random.default_rng(0)
    if (CIFAR_SAMPLE / "data_batch_1").is_file():
        import pickle

        with open(CIFAR_SAMPLE / "data_batch_1", "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(d[b"labels"])
        pick = {c: np.flatnonzero(y == c)[:10] for c in range(3)}
        source = "cifar"
    else:
        x = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
        pick = {c: np.arange(c * 10, c * 10 + 10) for c in range(3)}
        source = "synthetic"
    for c, idx in pick.items():
        for split, part in (("train", idx[:8]), ("val", idx[8:])):
            (root / split / str(c)).mkdir(parents=True, exist_ok=True)
            for i in part:
                Image.fromarray(x[i]).resize((size, size), Image.BICUBIC).save(root / split / str(c) / f"{i}.png")
    return source


@pytest.mark.slow
def test_imagenet_space_at_224_on_tda2x_derives_a_network_within_budget_and_trains_on_an_image_folder(tmp_path):
    """The paper's setting: 224 px, the paper-scale space, TDA2x, half-way budget; a few steps on real images.

    The images are the CIFAR-10 sample upscaled to 224 px when it is present, random ones otherwise.
    """
    _image_folder(tmp_path / "images")
    s, m = _search_and_train(tmp_path, ["--data", f"folder:{tmp_path / 'images'}", "--input-size", "224"], epochs=2, batch=4)
    assert s["predicted_latency_ms"] <= s["budget_ms"]
    # profiled beside the paper's network (5.9 M parameters, 535 M MACs): inside the space's range
    space = preset("imagenet")
    lo, hi = (count_macs(build_model(a, 3), 224)[0] for a in (space.smallest_kernels(), space.largest()))
    assert lo <= m["macs"] <= hi
    lm = LatencyModel(space, 224, 3, build_table("tda2x", space, 224, 3))
    assert lm.predict(parse_arch(s["arch"])) == pytest.approx(s["predicted_latency_ms"], rel=1e-6)
