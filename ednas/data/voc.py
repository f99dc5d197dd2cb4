"""Pascal VOC as multi-label classification: ``voc:DIR`` and ``voc:DIR07+DIR12``.

A directory in the VOC2007 / VOC2012 layout (``VOCdevkit/VOC2007``)::

    DIR/ImageSets/Main/{train,val,trainval,test}.txt   image ids, one a line
    DIR/Annotations/<id>.xml                            objects: <name>, <difficult>
    DIR/JPEGImages/<id>.jpg

Each image's target is a row over the classes (the 20 VOC classes, in the
devkit's order, when every object name is one of them; otherwise the sorted
names found, so a VOC-layout folder of one's own classes loads too):

* ``1``: at least one object of the class that is not marked ``difficult``;
* ``-1``: objects of the class, all of them ``difficult``;
* ``0``: no object of the class.

This is the VOC devkit's classification ground truth (its per-class files
write ``1``, ``0`` and ``-1`` for these three cases).  As the VOC protocol
does, a ``-1`` entry is left out of that class's AP at evaluation
(:func:`ednas.metrics.average_precision`), and ednas also leaves it out of
the training loss (:func:`ednas.train.task.task_loss`): the image is
neither a positive nor a negative of that class.

Splits:

* ``voc:DIR``: ``train.txt``, ``val.txt``, and ``test.txt`` if the folder
  has one (else ``val`` doubles as ``test``, as for ``folder:``);
* ``voc:DIR1+DIR2+...`` (the paper's protocol, ``voc:VOC2007+VOC2012``:
  train on 07+12 trainval, test on 07 test): ``train`` is every
  directory's ``trainval.txt``, ``test`` every ``test.txt`` there is, and
  ``val`` is the test set.  Nothing in ednas is selected on ``val`` (the
  training runs a fixed number of epochs; the search only logs the argmax
  network's validation score), so it is a report of test performance per
  epoch, not a held-out selection set.

Images are read from disk per batch (like ``folder:``), at ``--input-size``
(default 224).  Training: RandomResizedCrop with scale 0.5-1 (a smaller
crop would cut whole objects, and their labels, out of the image), flip,
colour jitter; evaluation: the whole image resized to the input size (no
centre crop, for the same reason).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch

from ednas.errors import DataError

__all__ = ["VOC_CLASSES", "VocImages", "read_voc", "read_objects"]

#: the 20 Pascal VOC classes in the devkit's order
VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def read_objects(path: Path) -> list[tuple[str, bool]]:
    """``(name, difficult)`` of every ``<object>`` of a VOC annotation file."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError as err:
        raise DataError(f"voc: annotation '{path}' does not exist") from err
    except ET.ParseError as err:
        raise DataError(f"voc: annotation '{path}' is not valid XML ({err})") from err
    out = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise DataError(f"voc: annotation '{path}' has an <object> without a <name>")
        out.append((name, (obj.findtext("difficult") or "0").strip() == "1"))
    return out


def _ids(root: Path, split: str) -> list[str]:
    f = root / "ImageSets" / "Main" / f"{split}.txt"
    if not f.is_file():
        raise DataError(f"voc: split file '{f}' does not exist (expected the VOC layout: ImageSets/Main/{{train,val,trainval,test}}.txt)")
    ids = [line.split()[0] for line in f.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"voc: split file '{f}' lists no image")
    return ids


def _targets(objects: list[list[tuple[str, bool]]], classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(objects), len(classes)), dtype=np.int64)
    for n, objs in enumerate(objects):
        for name, difficult in objs:
            c = index[name]
            if not difficult:
                y[n, c] = 1
            elif y[n, c] == 0:
                y[n, c] = -1
    return y


def read_voc(arg: str) -> tuple[tuple[str, ...], dict[str, tuple[list[Path], np.ndarray]]]:
    """The classes and, per split, the image files and their target rows of ``voc:ARG`` (see the module docstring)."""
    roots = [Path(p).expanduser() for p in arg.split("+")]
    for r in roots:
        if not r.is_dir():
            raise DataError(f"voc: directory '{r}' does not exist")
    if len(roots) == 1:
        r = roots[0]
        split_ids = {"train": [(r, i) for i in _ids(r, "train")], "val": [(r, i) for i in _ids(r, "val")]}
        has_test = (r / "ImageSets" / "Main" / "test.txt").is_file()
        split_ids["test"] = [(r, i) for i in _ids(r, "test")] if has_test else split_ids["val"]
    else:
        split_ids = {"train": [(r, i) for r in roots for i in _ids(r, "trainval")]}
        tests = [r for r in roots if (r / "ImageSets" / "Main" / "test.txt").is_file()]
        if not tests:
            raise DataError(f"voc: none of {', '.join(map(str, roots))} has ImageSets/Main/test.txt (the protocol tests on VOC2007's test set)")
        split_ids["test"] = [(r, i) for r in tests for i in _ids(r, "test")]
        split_ids["val"] = split_ids["test"]
    objects: dict[str, list] = {}
    paths: dict[str, list[Path]] = {}
    for split, ids in split_ids.items():
        objects[split] = [read_objects(r / "Annotations" / f"{i}.xml") for r, i in ids]
        paths[split] = [r / "JPEGImages" / f"{i}.jpg" for r, i in ids]
        missing = next((p for p in paths[split] if not p.is_file()), None)
        if missing is not None:
            raise DataError(f"voc: image '{missing}' ({split} split) does not exist")
    names = {n for objs in objects.values() for o in objs for n, _ in o}
    if not names:
        raise DataError(f"voc: no <object> in any annotation under {', '.join(map(str, roots))}")
    classes = VOC_CLASSES if names <= set(VOC_CLASSES) else tuple(sorted(names))
    return classes, {split: (paths[split], _targets(objects[split], classes)) for split in split_ids}


class VocImages(torch.utils.data.Dataset):
    """Images read from a list of files, each with its target row (``(image tensor, target)``)."""

    def __init__(self, paths: list[Path], targets: np.ndarray, transform):
        self.paths, self.transform = list(paths), transform
        self.targets = torch.as_tensor(np.asarray(targets))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        return self.transform(img), self.targets[i]
