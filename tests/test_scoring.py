"""One file, one score: every scoring path breaks ties between equal logits the same way (the lowest class wins).

A quantized network's logits are integers times one scale, so two classes
often tie for the top score; a top-k whose choice among ties is unspecified
then scores the same file differently from one run (or one path) to the
next.  These tests build a network whose logits tie *by construction*
(classes 0 and 1 always equal, above the rest) on a test split where class
0 and class 1 are not equally frequent, so any other tie rule gives another
accuracy, and score it through every path a user reaches: the training's
evaluation (PyTorch), ``ednas export``'s (ONNX Runtime) and ``ednas eval``
of the ``.onnx`` file.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from ednas.cli import main
from ednas.data import load_data, make_loader
from ednas.deploy.measure import onnx_scores, top1
from ednas.metrics import topk_correct, topk_from_scores
from ednas.runtime import export_onnx, ort_session
from ednas.train.metrics import evaluate

DATA = "synthetic:classes=3,n=40,size=16"  # test split: 10 images, labels 0 1 2 0 1 2 0 1 2 0


class Tied(nn.Module):
    """Logits (1, 1, 0) for every image: classes 0 and 1 tie for the top."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([1.0, 1.0, 0.0]))

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tied(tmp_path_factory):
    d = tmp_path_factory.mktemp("tied")
    export_onnx(Tied().eval(), d / "tied.onnx", 16)
    return d / "tied.onnx"


def test_the_split_makes_the_tie_rule_visible():
    y = load_data(DATA).splits["test"][1].numpy()
    assert (y == 0).sum() == 4 and (y == 1).sum() == 3  # lowest index wins: 40 %; highest: 30 %


def test_every_scoring_path_breaks_ties_alike(tied, tmp_path):
    data = load_data(DATA)
    expect = 40.0  # class 0 predicted for every image
    # the training's evaluation (PyTorch)
    assert evaluate(Tied().eval(), make_loader(data, "test", 4, False))["top1"] == pytest.approx(expect)
    # ednas export's path (ONNX Runtime, its session options)
    scores, labels = onnx_scores(ort_session(tied, 1), data, "test")
    assert np.all(scores[:, 0] == scores[:, 1])  # the tie is really there
    assert top1(scores, labels) == pytest.approx(expect)
    # ednas eval of the file, at two batch sizes
    for bs in ("1", "7"):
        out = tmp_path / f"e{bs}.json"
        assert main(["eval", "--model", str(tied), "--data", DATA, "--batch-size", bs, "--json", str(out)]) == 0
        assert json.loads(out.read_text())["top1"] == pytest.approx(expect)


def test_top_k_counts_ties_by_the_lowest_index():
    s = torch.tensor([[2.0, 2.0, 2.0, 1.0], [0.0, 5.0, 5.0, 5.0]])
    # top-1 of row 0 is class 0, top-2 adds class 1; row 1: class 1, then 2
    assert topk_correct(s, torch.tensor([1, 2]), ks=(1, 2)) == [0, 2]
    assert topk_correct(s, torch.tensor([0, 1]), ks=(1, 2)) == [2, 2]
    assert topk_from_scores(s.numpy(), np.array([2, 3]), ks=(2, 3)) == [0.0, 100.0]
