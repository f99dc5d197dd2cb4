import pickle

import numpy as np
import pytest
import torch

from ednas.data import DataConfig, arch_split, load_data, make_loader
from ednas.errors import EdnasError


def test_digits_split_is_stratified_deterministic_and_disjoint():
    a, b = load_data("digits"), load_data("digits", split_seed=0)
    c = load_data(DataConfig(spec="digits", split_seed=5))
    sizes = {k: len(v[1]) for k, v in a.splits.items()}
    assert sizes == {"train": 1258, "val": 180, "test": 359}
    assert not torch.equal(a.splits["test"][1], c.splits["test"][1])  # the split seed is honoured
    for k in a.splits:
        assert torch.equal(a.splits[k][0], b.splits[k][0])  # the same split seed, the same split
        assert len(a.splits[k][1]) == len(c.splits[k][1])
        counts = np.bincount(a.splits[k][1].numpy(), minlength=10)
        assert counts.min() >= 0.8 * counts.max()  # stratified
    x = a.splits["train"][0]
    assert x.shape[1:] == (3, 32, 32) and x.dtype == torch.uint8
    flat = {k: {bytes(v[0][i].numpy()) for i in range(len(v[1]))} for k, v in a.splits.items()}
    assert not (flat["train"] & flat["test"])  # no image in two splits


def test_arch_split_is_stratified_and_deterministic():
    y = load_data("digits").labels("train")
    w, a = arch_split(y, 0.8, seed=0)
    w2, a2 = arch_split(y, 0.8, seed=0)
    assert np.array_equal(w, w2) and np.array_equal(a, a2)
    assert len(set(w) & set(a)) == 0 and len(w) + len(a) == len(y)
    assert abs(len(a) / len(y) - 0.2) < 0.02
    assert set(np.unique(y[a])) == set(range(10))
    w3, _ = arch_split(y, 0.8, seed=1)
    assert not np.array_equal(w, w3)


def test_loader_is_deterministic_per_epoch_and_augments():
    d = load_data("digits")
    l1 = make_loader(d, "train", 64, True, seed=3)
    l2 = make_loader(d, "train", 64, True, seed=3)
    l1.set_epoch(2)
    l2.set_epoch(2)
    for (x1, y1), (x2, y2) in zip(l1, l2):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    l2.set_epoch(3)
    assert not torch.equal(next(iter(l1))[0], next(iter(l2))[0])
    x, _ = next(iter(l1))
    assert x.is_contiguous(memory_format=torch.channels_last)
    ev = make_loader(d, "test", 100, False)
    assert sum(len(y) for _, y in ev) == 359  # evaluation keeps every image, in order
    # augments: 16 copies of one image come out pad-cropped differently, and unlike the plain image
    same = make_loader(d, "train", 16, True, indices=[5] * 16, seed=3)
    xs, _ = next(iter(same))
    plain = next(iter(make_loader(d, "train", 16, False, indices=[5] * 16)))[0]
    assert torch.equal(plain[0], plain[15])  # without augmentation the copies are equal
    assert len({bytes(x.numpy()) for x in xs}) > 4 and any(not torch.equal(x, plain[0]) for x in xs)


def _write_batch(path, n, labels=None, data=None):
    d = {b"data": data if data is not None else np.random.randint(0, 255, (n, 3072), dtype=np.uint8),
         b"labels": labels if labels is not None else [i % 10 for i in range(n)], b"batch_label": b"x"}
    with open(path, "wb") as f:
        pickle.dump(d, f, protocol=2)


def test_cifar_reads_any_number_of_batches(tmp_path):
    for i in (1, 2):
        _write_batch(tmp_path / f"data_batch_{i}", 50)
    _write_batch(tmp_path / "test_batch", 20)
    with open(tmp_path / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f, protocol=2)
    d = load_data(f"cifar10:{tmp_path}")
    assert len(d.splits["train"][1]) + len(d.splits["val"][1]) == 100
    assert len(d.splits["test"][1]) == 20 and d.classes[3] == "c3" and d.augment == "padcrop+flip"


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("imagenet:/x", "unknown data kind 'imagenet'"),
        ("cifar10:/does/not/exist", "'/does/not/exist' does not exist"),
        ("folder:/does/not/exist", "'/does/not/exist' does not exist"),
        ("cifar10", "needs a directory"),
        ("synthetic:colors=3", "bad option 'colors=3'"),
    ],
)
def test_bad_data_specs(spec, fragment):
    with pytest.raises(EdnasError, match=fragment):
        load_data(spec)


def test_truncated_and_corrupted_batches(tmp_path):
    _write_batch(tmp_path / "data_batch_1", 30)
    _write_batch(tmp_path / "test_batch", 10)
    raw = (tmp_path / "data_batch_1").read_bytes()
    (tmp_path / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(EdnasError, match="data_batch_1' is truncated or corrupted"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_1").write_bytes(b"not a pickle at all" * 10)
    with pytest.raises(EdnasError, match="data_batch_1' is truncated or corrupted"):
        load_data(f"cifar10:{tmp_path}")
    _write_batch(tmp_path / "data_batch_1", 30, data=np.zeros((30, 100), dtype=np.uint8))
    with pytest.raises(EdnasError, match="'data' must be uint8 N x 3072"):
        load_data(f"cifar10:{tmp_path}")
    _write_batch(tmp_path / "data_batch_1", 30, labels=[1] * 29)
    with pytest.raises(EdnasError, match="30 images but 29 labels"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_1").unlink()
    with pytest.raises(EdnasError, match="no training batch"):
        load_data(f"cifar10:{tmp_path}")


def test_folder_data(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.random.randint(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    d = load_data(f"folder:{tmp_path}", input_size=32)
    assert d.classes == ["cat", "dog"] and d.size("train") == 6
    x, y = next(iter(make_loader(d, "train", 4, True, workers=0)))
    assert x.shape == (4, 3, 32, 32)
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "cow")
    with pytest.raises(EdnasError, match="class folders"):
        load_data(f"folder:{tmp_path}")


def test_cifar_sample_loads(cifar_dir):
    d = load_data(f"cifar10:{cifar_dir}")
    assert d.num_classes == 10 and len(d.splits["test"][1]) == 1000
    assert len(d.splits["train"][1]) == 4500 and d.classes[0] == "airplane"
