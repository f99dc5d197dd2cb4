"""Data sets behind ``--data SPEC``: digits, CIFAR batches, image folders, Pascal VOC, synthetic.

========================  ===============================================
``digits`` (default)      scikit-learn's bundled handwritten digits (real,
                          offline), stratified 70/10/20 train/val/test split
                          (fixed seed), upscaled 8x8 -> 32x32, 3 channels.
``cifar10:DIR``           the CIFAR python batches in DIR: any number of
``cifar100:DIR``          ``data_batch_*`` (or ``train``), ``test_batch``
                          (or ``test``), ``batches.meta`` (``meta``); read
                          directly, so subsets load; 10 % of the training
                          images (stratified, fixed seed) become ``val``.
``folder:DIR``            ImageNet-style ``DIR/train/<class>/*`` and
                          ``DIR/val/<class>/*`` (``DIR/test`` if present,
                          else ``val`` doubles as ``test``).
``voc:DIR``               Pascal VOC (2007/2012 layout) as multi-label
``voc:DIR07+DIR12``       classification, :mod:`ednas.data.voc`.
``synthetic``             random images and labels, for tests that need no
                          real signal (``synthetic:classes=4,n=128,size=32``).
========================  ===============================================

In-memory sets (all but ``folder`` and ``voc``) are uint8 tensors N x 3 x H
x W; they are augmented and normalised per batch by
:mod:`ednas.data.loaders`.

The task is a property of the data set (:attr:`DataSet.task`): ``single``
(one class per image, int64 labels) or ``multilabel`` (VOC: an N x C target
array of 1, 0 and -1, see :mod:`ednas.data.voc`).  The loss and the metrics
follow it (:func:`ednas.train.task.task_loss`,
:func:`ednas.metrics.task_metrics`).  The training set is further split
into a *weight* split and an *architecture* split for the search
(:func:`arch_split`).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np
import torch

from ednas.data.voc import VocImages, read_voc
from ednas.errors import ConfigError, DataError

__all__ = ["DataConfig", "DataSet", "DataSpec", "check_input_shape", "image_shape", "load_data", "parse_spec", "arch_split", "folder_dataset",
           "DATA_KINDS", "SPLITS", "IMAGENET_MEAN", "IMAGENET_STD"]

DATA_KINDS = ("digits", "cifar10", "cifar100", "folder", "voc", "synthetic")
SPLITS = ("train", "val", "test")
# synthetic:classes=N,n=N,size=N: defaults and ranges (a bound on memory too: n x 3 x size^2 bytes, x1.5 for val and test)
SYNTHETIC_DEFAULTS = {"classes": 4, "n": 128, "size": 32}
SYNTHETIC_RANGES = {"classes": (2, 10_000), "n": (1, 1_000_000), "size": (8, 1024)}
SYNTHETIC_MAX_BYTES = 2**31
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class DataConfig:
    """Which data set, and how it is split and read."""

    PRIMARY: ClassVar[str] = "spec"

    #: data set: digits, cifar10:DIR, cifar100:DIR, folder:DIR, voc:DIR (voc:DIR07+DIR12), synthetic
    spec: str = "digits"
    #: input side for folder data (in-memory sets have their own; folders default to 224)
    input_size: Optional[int] = None
    #: seed of the fixed train/val/test split, apart from --seed so that a result's test images never move
    split_seed: int = 0
    #: data loader worker processes per process (folder data; default: this process's share of the cores minus one, at most 8)
    workers: Optional[int] = None
    #: colour jitter of folder and VOC training images: brightness factor drawn from [1 - b, 1 + b]
    brightness: float = 0.4
    #: colour jitter: contrast factor from [1 - c, 1 + c]
    contrast: float = 0.4
    #: colour jitter: saturation factor from [1 - s, 1 + s]
    saturation: float = 0.4
    #: colour jitter: hue shift drawn from [-h, h] of a full turn (0..0.5)
    hue: float = 0.0

    def check(self, name) -> None:
        if self.input_size is not None and self.input_size < 8:
            raise ConfigError(f"{name('input_size')} {self.input_size}: the input side must be at least 8")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"{name('workers')} must be >= 0, got {self.workers}")
        for key in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{name(key)} must be in [0, 1), got {getattr(self, key)}")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"{name('hue')} must be in [0, 0.5], got {self.hue}")

    @property
    def jitter(self) -> tuple[float, float, float, float]:
        """(brightness, contrast, saturation, hue) of torchvision's ColorJitter."""
        return (self.brightness, self.contrast, self.saturation, self.hue)


@dataclass
class DataSet:
    """A loaded data set: splits, classes and how to augment and normalise.

    ``splits`` maps ``train``/``val``/``test`` to ``(images uint8 N x 3 x H x W,
    labels int64 N)`` for in-memory sets; ``folders`` maps them to directories
    for ``folder:`` sets; ``items`` to ``(image files, target rows N x C)``
    for ``voc:`` sets.  ``task`` is ``single`` or ``multilabel``.
    """

    name: str
    spec: str
    num_classes: int
    classes: list[str]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: str  # "padcrop", "padcrop+flip", "rrc" (RandomResizedCrop + flip + ColorJitter), "voc" (see ednas.data.voc)
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)
    items: dict[str, tuple[list, np.ndarray]] = field(default_factory=dict)
    workers: Optional[int] = None  # loader worker processes (folder data; None: from the machine)
    task: str = "single"  # "single" (one label per image) or "multilabel" (target rows of 1, 0, -1)
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.0)  # ColorJitter of folder/VOC training images

    @property
    def in_memory(self) -> bool:
        return bool(self.splits)

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    def has(self, split: str) -> bool:
        """Whether ``split`` was loaded (a set loaded for evaluation holds only the split asked for)."""
        return split in (self.splits if self.in_memory else self.items or self.folders)

    def need(self, split: str) -> None:
        """Raise a :class:`DataError` naming the spec unless ``split`` was loaded."""
        if not self.has(split):
            held = ", ".join(s for s in SPLITS if self.has(s)) or "none"
            raise DataError(f"data '{self.spec}' was loaded without its '{split}' split (it holds: {held})")

    def size(self, split: str) -> int:
        self.need(split)
        if self.in_memory:
            return len(self.splits[split][1])
        if self.items:
            return len(self.items[split][0])
        return len(folder_dataset(self, split, train=False))

    def labels(self, split: str) -> np.ndarray:
        """Labels (N) of a split, or its target rows (N x C) for multi-label data."""
        self.need(split)
        if self.in_memory:
            return self.splits[split][1].numpy()
        if self.items:
            return np.asarray(self.items[split][1])
        return np.asarray(folder_dataset(self, split, train=False).targets)


_FOLDER_CACHE: dict = {}


def _transform(data: DataSet, train: bool):
    """The train or eval transform of a folder or VOC set (see the module docstrings)."""
    import torchvision.transforms as T

    size = data.input_size
    norm = [T.ToTensor(), T.Normalize(data.mean, data.std)]
    b, c, s, h = data.jitter
    jitter = [T.ColorJitter(b, c, s, h)] if any(data.jitter) else []
    if data.augment == "voc":  # multi-label: keep every object in view
        if train:
            return T.Compose([T.RandomResizedCrop(size, scale=(0.5, 1.0)), T.RandomHorizontalFlip()] + jitter + norm)
        return T.Compose([T.Resize((size, size))] + norm)
    if train:
        return T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip()] + jitter + norm)
    return T.Compose([T.Resize(int(round(size / 0.875))), T.CenterCrop(size)] + norm)


def folder_dataset(data: DataSet, split: str, train: bool):
    """The torch Dataset of a file-based split (ImageFolder, or VOC's image list) with the train or eval transform."""
    from torchvision.datasets import ImageFolder

    data.need(split)
    where = data.spec if data.items else str(data.folders[split])
    key = (where, split if data.items else None, train, data.input_size, tuple(data.jitter), tuple(data.mean), tuple(data.std))
    if key not in _FOLDER_CACHE:
        tf = _transform(data, train)
        if data.items:
            paths, targets = data.items[split]
            _FOLDER_CACHE[key] = VocImages(paths, targets, tf)
        else:
            _FOLDER_CACHE[key] = ImageFolder(str(data.folders[split]), transform=tf)
    return _FOLDER_CACHE[key]


def _stratified(labels: np.ndarray, fracs: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """Deterministic stratified split of indices into len(fracs) parts."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fracs]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum((0.0,) + tuple(fracs)) * len(idx)).astype(int)
        for p in range(len(fracs)):
            parts[p].extend(idx[bounds[p] : bounds[p + 1]].tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def arch_split(labels: np.ndarray, weight_frac: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (weight split, architecture split), stratified and deterministic.

    Multi-label target rows (N x C) are stratified by their first positive
    class (images without one form a group of their own).
    """
    if not 0.0 < weight_frac < 1.0:
        raise DataError(f"weight split fraction must be in (0, 1), got {weight_frac}")
    labels = np.asarray(labels)
    if labels.ndim == 2:
        labels = np.where((labels > 0).any(1), (labels > 0).argmax(1), -1)
    w, a = _stratified(labels, (weight_frac, 1.0 - weight_frac), seed)
    return w, a


# ---------------------------------------------------------------------------


def _digits(split_seed: int) -> DataSet:
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # 8x8 in [0, 1]
    img = torch.nn.functional.interpolate(img, size=32, mode="bilinear", align_corners=False)
    img = (img.clamp(0, 1) * 255).round().to(torch.uint8).repeat(1, 3, 1, 1).contiguous()
    y = torch.tensor(d.target, dtype=torch.int64)
    tr, va, te = _stratified(d.target, (0.7, 0.1, 0.2), seed=split_seed)  # never moves with --seed
    mean = float(img[torch.as_tensor(tr)].float().mean() / 255)
    std = float(img[torch.as_tensor(tr)].float().std() / 255)
    return DataSet(
        name="digits",
        spec="digits",
        num_classes=10,
        classes=[str(i) for i in range(10)],
        input_size=32,
        mean=(mean,) * 3,
        std=(std,) * 3,
        augment="padcrop",  # digits are not mirror-symmetric: no flip
        splits={s: (img[torch.as_tensor(i)], y[torch.as_tensor(i)]) for s, i in (("train", tr), ("val", va), ("test", te))},
    )


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
    except FileNotFoundError as err:
        raise DataError(f"CIFAR batch file '{path}' does not exist") from err
    except Exception as e:  # noqa: BLE001 - truncated or corrupted pickles raise many types
        raise DataError(f"CIFAR batch file '{path}' is truncated or corrupted ({type(e).__name__}: {e}); "
                         "expected a python-version CIFAR batch (a pickled dict)") from e
    if not isinstance(d, dict):
        raise DataError(f"CIFAR batch file '{path}': expected a pickled dict, got {type(d).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise DataError(f"CIFAR batch file '{path}': missing key '{'data' if 'data' not in d else label_key}' "
                         f"(keys present: {', '.join(sorted(d))})")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR batch file '{path}': 'data' must be uint8 N x 3072, got {data.dtype} {data.shape}")
    if len(labels) != len(data):
        raise DataError(f"CIFAR batch file '{path}': {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar(kind: str, root: Path, split_seed: int, splits: tuple[str, ...] = SPLITS) -> DataSet:
    """CIFAR python batches; only the files the asked ``splits`` need are read (``test``: the test batch alone)."""
    if not root.is_dir():
        raise DataError(f"{kind}: directory '{root}' does not exist")
    hundred = kind == "cifar100"
    label_key = "fine_labels" if hundred else "labels"
    test_file = root / ("test" if hundred else "test_batch")
    meta_file = root / ("meta" if hundred else "batches.meta")
    n_classes = 100 if hundred else 10
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    loaded: list[tuple[str, np.ndarray]] = []
    if "train" in splits or "val" in splits:
        train_files = [root / "train"] if hundred else sorted(root.glob("data_batch_*"))
        train_files = [f for f in train_files if f.is_file()]
        if not train_files:
            want = "'train'" if hundred else "'data_batch_1' ... 'data_batch_5'"
            raise DataError(f"{kind}: no training batch in '{root}' (expected {want} from the CIFAR python version; "
                            "evaluating the test split needs only the test batch)")
        xs, ys = zip(*(_cifar_batch(f, label_key) for f in train_files))
        xtr, ytr = np.concatenate(xs), np.concatenate(ys)
        loaded.append(("training", ytr))
        tr, va = _stratified(ytr, (0.9, 0.1), seed=split_seed)
        out["train"], out["val"] = (t(xtr[tr]), t(ytr[tr])), (t(xtr[va]), t(ytr[va]))
    if "test" in splits:
        if not test_file.is_file():
            raise DataError(f"{kind}: test batch '{test_file}' does not exist")
        xte, yte = _cifar_batch(test_file, label_key)
        loaded.append(("test", yte))
        out["test"] = (t(xte), t(yte))
    for name, y in loaded:
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{kind}: {name} labels out of range 0..{n_classes - 1} in '{root}'")
    classes = [str(i) for i in range(n_classes)]
    if meta_file.is_file():
        meta = _unpickle(meta_file)
        names = meta.get("fine_label_names" if hundred else "label_names")
        if names is not None and len(names) == n_classes:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return DataSet(
        name=kind,
        spec=f"{kind}:{root}",
        num_classes=n_classes,
        classes=classes,
        input_size=32,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        augment="padcrop+flip",
        splits={k: out[k] for k in SPLITS if k in splits},
    )


def _folder(root: Path, input_size: int | None, splits: tuple[str, ...] = SPLITS) -> DataSet:
    """ImageNet-style class folders; only the folders of the asked ``splits`` need to exist."""
    if not root.is_dir():
        raise DataError(f"folder: directory '{root}' does not exist")
    layout = f"expected ImageNet-style '{root}/train/<class>/*' and '{root}/val/<class>/*'"
    folders = {}
    for split in ("train", "val"):
        p = root / split
        if p.is_dir():
            folders[split] = p
        elif split in splits or (split == "val" and "test" in splits and not (root / "test").is_dir()):
            raise DataError(f"folder: '{p}' does not exist; {layout}")
    if "test" in splits:
        folders["test"] = root / "test" if (root / "test").is_dir() else folders["val"]
    folders = {k: v for k, v in folders.items() if k in splits}
    first = next(iter(folders.values()))
    classes = sorted(d.name for d in first.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"folder: '{first}' has no class sub-folders")
    for path in folders.values():
        other = sorted(d.name for d in path.iterdir() if d.is_dir())
        if other != classes:
            raise DataError(f"folder: the class folders of '{path}' differ from '{first}'")
    return DataSet(
        name="folder",
        spec=f"folder:{root}",
        num_classes=len(classes),
        classes=classes,
        input_size=input_size or 224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment="rrc",
        folders=folders,
    )


def _synthetic_options(args: str) -> dict[str, int]:
    """``classes=N,n=N,size=N`` -> the options, checked against :data:`SYNTHETIC_RANGES`."""
    opts = dict(SYNTHETIC_DEFAULTS)
    for kv in (args.split(",") if args else []):
        k, _, v = kv.partition("=")
        if k not in opts or not (v.isascii() and v.isdigit()):
            raise DataError(f"synthetic: bad option '{kv}'; expected classes=N, n=N, size=N")
        opts[k] = int(v)
    for k, (lo, hi) in SYNTHETIC_RANGES.items():
        if not lo <= opts[k] <= hi:
            raise DataError(f"synthetic: {k}={opts[k]} is out of range; expected {lo} <= {k} <= {hi}")
    need = opts["n"] * 3 * opts["size"] ** 2 * 3 // 2
    if need > SYNTHETIC_MAX_BYTES:
        raise DataError(f"synthetic: n={opts['n']} images of {opts['size']}x{opts['size']} need {need / 2**30:.1f} GiB; "
                        f"at most {SYNTHETIC_MAX_BYTES / 2**30:.0f} GiB (use fewer or smaller images)")
    return opts


def _voc(arg: str, input_size: int | None) -> DataSet:
    classes, items = read_voc(arg)
    return DataSet(
        name="voc",
        spec=f"voc:{arg}",
        num_classes=len(classes),
        classes=list(classes),
        input_size=input_size or 224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augment="voc",
        items=items,
        task="multilabel",
    )


def _synthetic(args: str, split_seed: int) -> DataSet:
    opts = _synthetic_options(args)
    g = torch.Generator().manual_seed(1234 + split_seed)
    n, c, s = opts["n"], opts["classes"], opts["size"]
    splits = {}
    for split, m in (("train", n), ("val", max(n // 4, c)), ("test", max(n // 4, c))):
        x = torch.randint(0, 256, (m, 3, s, s), generator=g, dtype=torch.uint8)
        y = torch.arange(m) % c
        splits[split] = (x, y)
    return DataSet(
        name="synthetic",
        spec=f"synthetic:{args}" if args else "synthetic",
        num_classes=c,
        classes=[str(i) for i in range(c)],
        input_size=s,
        mean=(0.5,) * 3,
        std=(0.29,) * 3,
        augment="padcrop",
        splits=splits,
    )


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``--data`` spec: its kind, its directory (``cifar10``, ``cifar100``, ``folder``) and options (``synthetic``)."""

    kind: str
    path: Optional[Path] = None
    options: tuple[tuple[str, int], ...] = ()
    arg: str = ""


def parse_spec(spec: str) -> DataSpec:
    """Parse a ``--data`` spec without reading anything (see the module docstring for the kinds).

    Raises:
        DataError: an unknown kind, a missing or forbidden argument, or a bad option, named.
    """
    if not isinstance(spec, str):
        raise DataError(f"--data must be a string, got {type(spec).__name__}")
    spec = (spec or "digits").strip() or "digits"
    kind, _, arg = spec.partition(":")
    if kind not in DATA_KINDS:
        raise DataError(f"unknown data kind '{kind}' in --data '{spec}'; expected one of: digits, cifar10:DIR, "
                        "cifar100:DIR, folder:DIR, voc:DIR (voc:DIR07+DIR12), synthetic")
    if kind == "digits":
        if arg:
            raise DataError(f"--data digits takes no argument, got '{spec}'")
        return DataSpec(kind)
    if kind == "synthetic":
        return DataSpec(kind, options=tuple(_synthetic_options(arg).items()), arg=arg)
    if not arg.strip():
        raise DataError(f"--data {kind} needs a directory: '{kind}:DIR'")
    if "\x00" in arg:
        raise DataError(f"--data {kind}: the directory name holds a NUL character: {arg!r}")
    try:
        path = Path(arg).expanduser()
    except RuntimeError as e:  # '~user' of no such user
        raise DataError(f"--data {kind}: cannot expand '{arg}' ({e})") from e
    return DataSpec(kind, path=path, arg=arg)


def load_data(spec: str | DataConfig, split_seed: int = 0, input_size: int | None = None, splits: tuple[str, ...] | None = None) -> DataSet:
    """Load the data set named by ``spec`` (a spec string or a :class:`DataConfig`; see the module docstring).

    ``split_seed`` fixes the train/val(/test) split of in-memory sets (and the
    draw of ``synthetic``); it is kept apart from the training seed so that
    the test images of a result never move with ``--seed``.  ``splits``
    (default: all three) are the splits that will be used: ``cifar`` and
    ``folder`` data then read and require only what those need (evaluating
    the test split needs only the test batch).

    Raises:
        EdnasError: an unknown kind, a missing path or a malformed file, named.
    """
    if isinstance(spec, DataConfig):
        data = load_data(spec.spec, spec.split_seed, spec.input_size, splits)
        if spec.input_size is not None and data.in_memory and spec.input_size != data.input_size:
            raise ConfigError(f"--input-size {spec.input_size}: data '{data.spec}' has images of {data.input_size}x{data.input_size}, which "
                              "in-memory sets keep; drop --input-size (it sets the size of folder data)")
        data.workers = spec.workers
        data.jitter = spec.jitter
        return data
    want = tuple(SPLITS if splits is None else splits)
    bad = [s for s in want if s not in SPLITS]
    if bad or not want:
        raise DataError(f"splits {want!r}: expected some of {', '.join(SPLITS)}")
    ds = parse_spec(spec)
    if ds.kind == "digits":
        data = _digits(split_seed)
    elif ds.kind == "synthetic":
        data = _synthetic(ds.arg, split_seed)
    elif ds.kind == "folder":
        data = _folder(ds.path, input_size, want)
    elif ds.kind == "voc":
        data = _voc(ds.arg, input_size)
    else:
        data = _cifar(ds.kind, ds.path, split_seed, want)
    return data


def image_shape(data: DataSet) -> tuple[int, int, int]:
    """(C, H, W) of one image of ``data`` as its loaders hand it out."""
    if data.in_memory:
        x = next(iter(data.splits.values()))[0]  # any split: a set loaded for evaluation may hold only one
        return tuple(int(d) for d in x.shape[1:])  # type: ignore[return-value]
    # folder data is resized to its input size; ImageFolder loads RGB
    return (3, data.input_size, data.input_size)


def check_input_shape(data: DataSet, input_size: int, channels: int = 3, what: str = "calibration data", model: str | None = None) -> None:
    """Raise unless ``data``'s images are ``channels x input_size x input_size``.

    Args:
        data: the data set to feed the model.
        input_size: the model's input height and width.
        channels: the model's input channels.
        what: how the message names the data (``calibration data``, ``evaluation data``).
        model: the model file, named in the message when given.

    Raises:
        EdnasError: naming the data spec, its image shape and the model's.
    """
    got = image_shape(data)
    want = (channels, input_size, input_size)
    if got != want:
        raise DataError(
            f"{what} '{data.spec}' has images of shape {'x'.join(map(str, got))} (CxHxW) but the model"
            f"{f' {model!r}' if model else ''} expects {'x'.join(map(str, want))}; "
            "use data of the model's input size and channel count"
        )
