"""Pascal VOC multi-label data: AP and mAP, the VOC layout, difficult objects, BCE, and ``ednas run --data voc:DIR``."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.voc_from_cifar import cifar_pools, write_voc
from ednas.arch.spec import parse_arch
from ednas.cli import main
from ednas.data import VOC_CLASSES, arch_split, load_data, make_loader
from ednas.errors import DataError
from ednas.metrics import average_precision, mean_ap, multilabel_metrics, per_class_ap, task_metrics
from ednas.train.task import task_loss
from tests.conftest import TINY_SPACE
from tests.search_helpers import SyntheticLatency, make_search


def colour_pools(classes: int = 4, n: int = 160, seed: int = 0) -> tuple[dict, list[str]]:
    """Synthetic 32x32 tiles whose class is their colour (a signal a network learns in a few steps)."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (classes, 3))

    def pool(m):
        y = np.arange(m) % classes
        x = np.clip(palette[y][:, None, None, :] + rng.normal(0, 20, (m, 32, 32, 3)), 0, 255).astype(np.uint8)
        return x, y

    return {"train": pool(n), "val": pool(n // 4), "test": pool(n // 2)}, [f"c{i}" for i in range(classes)]


# -- AP and mAP ----------------------------------------------------------------------------------


def test_average_precision_equals_scikit_learn_to_1e_6():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(2, 80))
        y = rng.integers(-1, 2, n)  # -1: difficult only, left out of the AP
        if not (y > 0).any():
            y[0] = 1
        s = rng.normal(size=n)
        if trial % 3 == 0:
            s = np.round(s, 1)  # ties
        keep = y >= 0
        ours = average_precision(s, y)
        theirs = average_precision_score(y[keep] > 0, s[keep])
        assert abs(ours - theirs) < 1e-6, (trial, ours, theirs)


def test_voc07_11_point_ap_on_a_hand_computed_case():
    # ranked: + - + - +  -> (recall, precision) = (1/3, 1), (1/3, 1/2), (2/3, 2/3), (2/3, 1/2), (1, 3/5)
    # 11-point: t = 0, .1, .2, .3 -> 1; t = .4, .5, .6 -> 2/3; t = .7, .8, .9, 1 -> 3/5
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    y = np.array([1, 0, 1, 0, 1])
    assert average_precision(s, y, "voc07") == pytest.approx((4 * 1 + 3 * 2 / 3 + 4 * 3 / 5) / 11, abs=1e-12)
    # area: sum of recall steps times precision = 1/3 (1 + 2/3 + 3/5)
    assert average_precision(s, y, "area") == pytest.approx((1 + 2 / 3 + 3 / 5) / 3, abs=1e-12)
    # a difficult-only image, however high its score, changes neither
    s2, y2 = np.r_[0.95, s], np.r_[-1, y]
    assert average_precision(s2, y2, "voc07") == average_precision(s, y, "voc07")
    # counted as a negative instead, it would
    assert average_precision(s2, np.r_[0, y], "voc07") < average_precision(s, y, "voc07")


def test_map_leaves_out_classes_without_positives():
    s = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.3], [0.4, 0.3, 0.3]])
    t = np.array([[1, 0, 0], [0, 1, -1], [0, 0, 0]])
    ap = per_class_ap(s, t)
    assert ap[0] == 1.0 and ap[1] == 1.0 and np.isnan(ap[2])
    assert mean_ap(s, t) == 100.0
    m = multilabel_metrics(s, t, ["a", "b", "c"])
    assert m["ap"] == {"a": 100.0, "b": 100.0, "c": None} and m["map"] == 100.0
    tm = task_metrics(s, t, multilabel=True)
    assert tm["top1"] is None and tm["score_name"] == "map" and tm["score"] == 100.0


# -- the loss --------------------------------------------------------------------------------------


def test_multilabel_loss_is_bce_over_the_entries_that_count():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g)
    target = torch.randint(-1, 2, (6, 5), generator=g)
    counted = target >= 0
    expected = F.binary_cross_entropy_with_logits(logits[counted], (target[counted] > 0).float())
    assert task_loss(logits, target, multilabel=True) == pytest.approx(float(expected), rel=1e-6)
    # what the network says about a difficult-only class does not move the loss
    moved = logits.clone()
    moved[~counted] += 10.0
    assert task_loss(moved, target, multilabel=True) == pytest.approx(float(expected), rel=1e-6)
    # label smoothing is for the single-label softmax only
    assert task_loss(logits, target, True, 0.1) == task_loss(logits, target, True, 0.0)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    assert task_loss(logits, y, False, 0.1) == pytest.approx(float(F.cross_entropy(logits, y, label_smoothing=0.1)))


# -- the VOC layout ----------------------------------------------------------------------------------


def _xml(objects) -> str:
    objs = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult></object>" for n, d in objects)
    return f"<annotation>{objs}</annotation>"


def _voc_by_hand(root, splits: dict, with_test: bool = True):
    """A VOC folder written by hand: splits maps split -> {id: [(name, difficult)]}."""
    from PIL import Image

    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for split, images in splits.items():
        if split == "test" and not with_test:
            continue
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))
        for i, objs in images.items():
            (root / "Annotations" / f"{i}.xml").write_text(_xml(objs))
            Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
    if "train" in splits and "val" in splits:
        (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{i}\n" for s in ("train", "val") for i in splits[s]))


def test_voc_names_give_the_twenty_classes_and_difficult_only_is_minus_one(tmp_path):
    _voc_by_hand(tmp_path, {
        "train": {"a1": [("cat", False), ("dog", True)], "a2": [("person", True), ("person", False)]},
        "val": {"b1": [("dog", True), ("dog", True)]},
        "test": {"c1": [("tvmonitor", False)]},
    })
    d = load_data(f"voc:{tmp_path}", input_size=32)
    assert d.classes == list(VOC_CLASSES) and d.num_classes == 20 and d.multilabel
    y = d.labels("train")
    cat, dog, person = (VOC_CLASSES.index(c) for c in ("cat", "dog", "person"))
    assert y[0, cat] == 1 and y[0, dog] == -1 and (np.delete(y[0], [cat, dog]) == 0).all()
    assert y[1, person] == 1  # one non-difficult object makes the class present
    assert d.labels("val")[0, dog] == -1
    assert d.size("test") == 1 and d.labels("test")[0, VOC_CLASSES.index("tvmonitor")] == 1
    x, t = next(iter(make_loader(d, "train", 2, True, workers=0)))
    assert x.shape == (2, 3, 32, 32) and t.shape == (2, 20)


def test_voc_07_plus_12_protocol_trains_on_both_trainvals_and_tests_on_07(tmp_path):
    v07, v12 = tmp_path / "VOC2007", tmp_path / "VOC2012"
    _voc_by_hand(v07, {"train": {"07a": [("cat", False)]}, "val": {"07b": [("dog", False)]}, "test": {"07t": [("cow", False)], "07u": [("bus", False)]}})
    _voc_by_hand(v12, {"train": {"12a": [("car", False)]}, "val": {"12b": [("bird", False)]}}, with_test=False)
    d = load_data(f"voc:{v07}+{v12}", input_size=32)
    assert [p.stem for p in d.items["train"][0]] == ["07a", "07b", "12a", "12b"]
    assert [p.stem for p in d.items["test"][0]] == ["07t", "07u"]
    assert d.items["val"][0] == d.items["test"][0]  # nothing is selected on val (module docstring)
    single = load_data(f"voc:{v12}", input_size=32)  # no test.txt: val doubles as test
    assert [p.stem for p in single.items["test"][0]] == ["12b"]


def test_voc_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(f"voc:{tmp_path / 'nope'}")
    _voc_by_hand(tmp_path, {"train": {"a": [("cat", False)]}, "val": {"b": [("cat", False)]}})
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"a\.xml' is not valid XML"):
        load_data(f"voc:{tmp_path}")
    (tmp_path / "Annotations" / "a.xml").write_text(_xml([("cat", False)]))
    (tmp_path / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"image '.*b\.jpg' \(val split\) does not exist"):
        load_data(f"voc:{tmp_path}")
    (tmp_path / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"val\.txt' does not exist"):
        load_data(f"voc:{tmp_path}")
    with pytest.raises(DataError, match="voc:DIR"):
        load_data("vocx:/x")


def test_built_voc_folder_labels_agree_with_the_per_class_files(tmp_path):
    pools, names = colour_pools(4, 80)
    built = write_voc(tmp_path, pools, names, {"train": 20, "val": 5, "test": 10}, seed=1)
    assert built["difficult"] > 0 and built["splits"] == {"train": 20, "val": 5, "test": 10}
    d = load_data(f"voc:{tmp_path}", input_size=64)
    assert d.classes == names
    for split in ("train", "test"):
        y = d.labels(split)
        for c, name in enumerate(names):
            lines = (tmp_path / "ImageSets" / "Main" / f"{name}_{split}.txt").read_text().split("\n")
            flags = [int(line.split()[1]) for line in lines if line]
            # VOC's per-class files: 1 present, -1 absent, 0 difficult only; our rows: 1, 0, -1
            assert [{1: 1, -1: 0, 0: -1}[f] for f in flags] == y[:, c].tolist()


def test_cifar_sample_builds_a_voc_folder(tmp_path, cifar_dir):
    pools, names = cifar_pools(cifar_dir)
    write_voc(tmp_path, pools, names, {"train": 8, "val": 4, "test": 4})
    d = load_data(f"voc:{tmp_path}", input_size=64)
    assert d.classes == names and d.size("train") == 8 and (d.labels("train") != 0).any(1).all()


def test_arch_split_stratifies_multilabel_rows():
    rng = np.random.default_rng(0)
    y = (rng.random((100, 5)) < 0.3).astype(np.int64)
    w, a = arch_split(y, 0.8, seed=3)
    assert len(np.intersect1d(w, a)) == 0 and len(w) + len(a) == 100
    w2, _ = arch_split(y, 0.8, seed=3)
    assert (w == w2).all()


# -- end to end ------------------------------------------------------------------------------------


def test_ednas_run_on_voc_reports_map_everywhere(tmp_path):
    pools, names = colour_pools(4, 160)
    write_voc(tmp_path / "voc", pools, names, {"train": 64, "val": 16, "test": 24})
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--data", f"voc:{tmp_path / 'voc'}", "--input-size", "32", "--target", "tda2x",
                 "--space", TINY_SPACE, "--search-epochs", "2", "--warmup-epochs", "1", "--train-epochs", "2", "--batch-size", "16",
                 "--workers", "0", "--baselines", "mobilenetv2@0.25", "--export.calib-images", "16", "--no-tensorboard"]) == 0
    s = json.loads((out / "summary.json").read_text())
    m = json.loads((out / "train" / "metrics.json").read_text())
    e = json.loads((out / "export" / "export.json").read_text())
    assert s["task"] == "multilabel" and s["top1"] is None and 0 <= s["map"] <= 100
    assert s["map"] == m["map"] and s["map_voc07"] == m["map_voc07"] and set(m["ap"]) == set(names)
    assert e["map_fp32"] == pytest.approx(m["map"], abs=1e-3) and e["top1_fp32"] is None and e["map_quant"] is not None
    b = json.loads(next((out / "baselines").glob("*/result.json")).read_text())
    assert b["task"] == "multilabel" and b["map"] is not None and b["top1"] is None
    report = (out / "report.md").read_text()
    assert "test mAP" in report and "AP, VOC07 11-point" in report and "Not run" not in report.split("## Latency table")[0]
    # ednas eval: the same mAP, and predictions from which it can be recomputed
    preds = tmp_path / "p.npz"
    assert main(["eval", "--model", str(out / "train" / "model.pt"), "--json", str(tmp_path / "e.json"), "--predictions", str(preds), "--workers", "0"]) == 0
    ev = json.loads((tmp_path / "e.json").read_text())
    assert ev["map"] == pytest.approx(m["map"], abs=1e-9) and ev["ap"] == m["ap"]
    p = np.load(preds)
    assert p["scores"].shape == p["targets"].shape == p["difficult"].shape == (24, 4)
    assert set(np.unique(p["targets"])) <= {0, 1} and list(p["classes"]) == names
    recomputed = mean_ap(p["scores"], np.where(p["difficult"], -1, p["targets"]))
    assert recomputed == pytest.approx(ev["map"], abs=1e-9)


def test_search_loss_on_multilabel_data_is_the_task_loss(tmp_path):
    pools, names = colour_pools(3, 60)
    write_voc(tmp_path / "voc", pools, names, {"train": 24, "val": 6, "test": 6})
    data = load_data(f"voc:{tmp_path / 'voc'}", input_size=32)
    data.workers = 0
    s = make_search(tmp_path / "s", SyntheticLatency(parse_arch(TINY_SPACE)), data=data, batch_size=8)
    logits = torch.randn(4, 3)
    y = torch.tensor([[1, 0, -1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    assert s._criterion(logits, y) == task_loss(logits, y, multilabel=True)
