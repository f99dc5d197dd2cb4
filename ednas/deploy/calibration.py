"""Calibration data for post-training quantization: images the model was trained on.

Static quantization fixes every activation's range in advance, from the
ranges seen on a *calibration set*.  It must look like deployment input: the
model's own training split by default (a few hundred images, drawn at random
with a fixed seed so every class appears and the run is reproducible), without
augmentation, normalised with the model's mean and std (not the calibration
data set's own: the network only ever saw its own normalisation).

:class:`CalibrationReader` is the ``CalibrationDataReader`` ONNX Runtime's
calibrators pull from.  Calibration data of the wrong shape is refused
before ONNX Runtime would fail deep inside a session
(:func:`ednas.data.check_input_shape`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from ednas.data import DataSet, make_loader
from ednas.errors import ExportError

__all__ = ["CalibrationReader", "calibration_images", "with_normalisation"]


def with_normalisation(data: DataSet, mean, std) -> DataSet:
    """``data`` normalised with the model's ``mean``/``std`` (a shallow copy) when given."""
    if mean is None or std is None:
        return data
    return dataclasses.replace(data, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))


def calibration_images(data: DataSet, n: int, seed: int = 0, split: str = "train") -> np.ndarray:
    """``n`` normalised images (N x C x H x W float32, contiguous) of ``split``, drawn without replacement.

    The draw is a fixed-seed random subset, so classes are mixed whatever the
    order of the split; ``n <= 0`` or ``n`` above the split's size takes all.
    """
    size = data.size(split)
    if size == 0:
        raise ExportError(f"calibration data '{data.spec}' has no '{split}' images")
    take = size if n <= 0 or n >= size else n
    idx = np.sort(np.random.default_rng(seed).permutation(size)[:take])
    batches = [x.contiguous().numpy() for x, _ in make_loader(data, split, 256, False, indices=idx)]
    return np.ascontiguousarray(np.concatenate(batches).astype(np.float32))


class CalibrationReader(CalibrationDataReader):
    """Feeds calibration images to an ONNX Runtime calibrator, ``batch`` at a time.

    Args:
        images: N x C x H x W float32 (normalised, as the model takes them).
        input_name: the model's input name.
        batch: images per run; 1 for a model exported with a fixed batch of 1.
    """

    def __init__(self, images: np.ndarray, input_name: str = "input", batch: int = 1):
        self.images, self.input_name, self.batch = images, input_name, max(1, int(batch))
        self._pos = 0

    def get_next(self) -> dict | None:
        if self._pos >= len(self.images):
            return None
        xb = self.images[self._pos : self._pos + self.batch]
        self._pos += self.batch
        if len(xb) < self.batch:  # a fixed-batch model cannot take a short last batch
            return None
        return {self.input_name: xb}

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return len(self.images) // self.batch
