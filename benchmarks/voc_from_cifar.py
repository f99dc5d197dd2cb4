"""A Pascal VOC-layout folder from real images, and ``ednas run`` on it through ``voc:DIR``.

Pascal VOC is not on this machine, so this builds a folder in its layout from
the CIFAR-10 sample (``../shared/data/cifar10``): every *scene* is a 64x64
JPEG of 2x2 cells, each holding one 32x32 CIFAR image (an object) or
background (noise, about a quarter of the cells; every scene has at least
one object).  About 15 % of the objects are marked ``difficult``, and those
are drawn small (16x16, at a random place in their cell), as VOC's difficult
objects are the ones hard to recognise.  Each scene's objects are written to
``Annotations/<id>.xml`` in VOC's format (name, difficult, bounding box);
``ImageSets/Main`` gets ``train.txt``, ``val.txt``, ``trainval.txt``,
``test.txt`` and the per-class ``<class>_<split>.txt`` files (``1``
present, ``-1`` absent, ``0`` difficult only).  Train and val scenes are
tiled from the sample's training batch, test scenes from its test batch, so
no image is in two splits (train and val take disjoint parts of the training
batch).  The classes are CIFAR-10's own names (they are
not all VOC classes, so ``voc:`` reads the names it finds).

Then ``ednas run --data voc:DIR --input-size 64`` (the ``cifar`` space,
``host-ort``, budget halfway) trains, searches, exports and reports on it
with BCE-with-logits and mAP; the result's mAP (area under the curve and
VOC07 11-point) and per-class AP are recorded.

    python benchmarks/voc_from_cifar.py                       # full: 1500/150/300 scenes, 10+15 epochs, ~20 min on 2 idle cores
    python benchmarks/voc_from_cifar.py --quick               # 200/50/100 scenes, 2+2 epochs, no baselines: ~3 min

Writes ``benchmarks/results/voc_from_cifar.json`` (``--quick``:
``voc_from_cifar_quick.json``).  :func:`write_voc` is also what the tests
build their small VOC folders with.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10"

__all__ = ["write_voc", "cifar_pools", "main"]


def _xml(image_id: str, size: int, objects: list[tuple[str, bool, tuple[int, int, int, int]]]) -> str:
    objs = "".join(
        f"<object><name>{escape(n)}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{int(d)}</difficult>"
        f"<bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, d, b in objects
    )
    return (f"<annotation><folder>VOC-from-CIFAR</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>\n")


def write_voc(out, pools: dict, classes: list[str], scenes: dict, seed: int = 0, difficult_frac: float = 0.15,
              empty_frac: float = 0.25, tile: int = 32) -> dict:
    """Write a VOC-layout folder of 2x2-tile scenes.

    Args:
        out: the folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``).
        pools: split -> ``(images uint8 N x tile x tile x 3, labels N)``,
            one pool per split (no image in two splits).  A pool's images
            are dealt out in a random order; once all are used they are
            dealt again, in new scenes.
        classes: class names, indexed by the labels.
        scenes: split -> number of scenes.
        seed: the draw.
        difficult_frac: share of objects marked ``difficult`` (drawn at half size).
        empty_frac: share of cells left as background.
        tile: the side of a tile (the scene is ``2 * tile``).

    Returns:
        ``{"splits": {split: n}, "objects": n, "difficult": n, "classes": [...]}``.
    """
    from PIL import Image

    out = Path(out)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    def deal(n):  # every image once per pass, a new order each pass
        while True:
            yield from rng.permutation(n).tolist()

    orders = {split: deal(len(pool[1])) for split, pool in pools.items()}
    ids: dict[str, list[str]] = {}
    rows: dict[str, list[dict]] = {}
    n_obj = n_diff = 0
    next_id = 1
    for split in ("train", "val", "test"):
        if split not in scenes:
            continue
        images, labels = pools[split]
        order = orders[split]
        ids[split], rows[split] = [], []
        for _ in range(int(scenes[split])):
            scene = rng.integers(0, 256, (2 * tile, 2 * tile, 3)).astype(np.uint8) // 2 + 64  # grey noise background
            cells = rng.random(4) >= empty_frac
            if not cells.any():
                cells[rng.integers(4)] = True
            objects, state = [], {}
            for c in np.flatnonzero(cells):
                k = next(order)
                y0, x0 = (c // 2) * tile, (c % 2) * tile
                name, difficult = classes[int(labels[k])], bool(rng.random() < difficult_frac)
                img = images[k]
                if difficult:
                    half = tile // 2
                    small = np.asarray(Image.fromarray(img).resize((half, half), Image.BILINEAR))
                    dy, dx = rng.integers(0, tile - half + 1, 2)
                    scene[y0 + dy : y0 + dy + half, x0 + dx : x0 + dx + half] = small
                    box = (x0 + dx + 1, y0 + dy + 1, x0 + dx + half, y0 + dy + half)
                else:
                    scene[y0 : y0 + tile, x0 : x0 + tile] = img
                    box = (x0 + 1, y0 + 1, x0 + tile, y0 + tile)
                objects.append((name, difficult, box))
                n_obj += 1
                n_diff += difficult
                state[name] = 1 if (not difficult or state.get(name) == 1) else 0  # 1: a non-difficult object, 0: difficult only
            image_id = f"{next_id:06d}"
            next_id += 1
            Image.fromarray(scene).save(out / "JPEGImages" / f"{image_id}.jpg", quality=95)
            (out / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id, 2 * tile, objects))
            ids[split].append(image_id)
            rows[split].append(state)
    main = out / "ImageSets" / "Main"
    lists = dict(ids)
    if "train" in ids and "val" in ids:
        lists["trainval"] = ids["train"] + ids["val"]
        rows["trainval"] = rows["train"] + rows["val"]
    for split, id_list in lists.items():
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in id_list))
        for name in classes:  # VOC's per-class files: 1 present, -1 absent, 0 difficult only
            flags = [{1: " 1", 0: " 0"}.get(r.get(name), "-1") for r in rows[split]]
            (main / f"{name}_{split}.txt").write_text("".join(f"{i} {f}\n" for i, f in zip(id_list, flags)))
    return {"splits": {s: len(v) for s, v in ids.items()}, "objects": n_obj, "difficult": n_diff, "classes": list(classes)}


def cifar_pools(cifar_dir=CIFAR, val_frac: float = 0.1) -> tuple[dict, list[str]]:
    """Pools of the CIFAR-10 sample (HWC uint8): train and val disjoint parts of ``data_batch_*``, test ``test_batch``."""
    cifar_dir = Path(cifar_dir)

    def batch(f):
        with open(f, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x), np.asarray(d[b"labels"], dtype=np.int64)

    xs, ys = zip(*(batch(f) for f in sorted(cifar_dir.glob("data_batch_*"))))
    x, y = np.concatenate(xs), np.concatenate(ys)
    cut = int(round(len(y) * (1 - val_frac)))
    with open(cifar_dir / "batches.meta", "rb") as fh:
        names = [n.decode() for n in pickle.load(fh, encoding="bytes")[b"label_names"]]
    return {"train": (x[:cut], y[:cut]), "val": (x[cut:], y[cut:]), "test": batch(cifar_dir / "test_batch")}, names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cifar", default=str(CIFAR), help="the CIFAR-10 sample (python batches)")
    p.add_argument("--voc", default="/tmp/ednas-voc-cifar", help="where the VOC-layout folder is written")
    p.add_argument("--out", default="/tmp/ednas-voc-run", help="ednas run --out")
    p.add_argument("--quick", action="store_true", help="a small set and short schedule: proves the path end to end")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="training threads (0: all cores; 1 on a shared machine)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from benchmarks._common import write_result
    from ednas.cli import main as ednas

    scenes = {"train": 200, "val": 50, "test": 100} if args.quick else {"train": 1500, "val": 150, "test": 300}
    t0 = time.time()
    pools, names = cifar_pools(args.cifar)
    built = write_voc(args.voc, pools, names, scenes, seed=args.seed)
    build_s = time.time() - t0
    search_epochs, train_epochs = (2, 2) if args.quick else (10, 15)
    cmd = ["run", "--out", args.out, "--data", f"voc:{args.voc}", "--input-size", "64", "--target", "host-ort",
           "--search-epochs", str(search_epochs), "--warmup-epochs", "1" if args.quick else "3", "--train-epochs", str(train_epochs),
           "--batch-size", "32", "--workers", "0", "--seed", str(args.seed), "--threads", str(args.threads), "--lut-check", "0" if args.quick else "12"]
    if args.quick:
        cmd += ["--baselines", "none"]
    else:
        cmd += ["--baselines", "mobilenetv2"]
    t1 = time.time()
    rc = ednas(cmd)
    run_s = time.time() - t1
    summary = json.loads((Path(args.out) / "summary.json").read_text()) if rc == 0 else {}
    keys = ("data", "arch", "params", "macs", "map", "map_voc07", "map_int8", "ap", "ap_voc07", "latency_ms_predicted",
            "latency_ms_measured", "budget_ms", "onnx_max_abs_diff", "stages")
    baselines = []
    for r in sorted(Path(args.out).glob("baselines/*/result.json")):
        b = json.loads(r.read_text())
        baselines.append({k: b.get(k) for k in ("title", "width", "params", "macs", "map", "map_voc07", "latency_ms")})
    write_result("voc_from_cifar_quick" if args.quick else "voc_from_cifar", {
        "command": "ednas " + " ".join(cmd), "rc": rc, "voc": built, "scenes": scenes, "build_s": round(build_s, 1),
        "run_s": round(run_s, 1), "summary": {k: summary.get(k) for k in keys}, "baselines": baselines,
    })
    return rc


if __name__ == "__main__":
    sys.exit(main())
