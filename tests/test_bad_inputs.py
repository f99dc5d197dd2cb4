"""Malformed inputs, as a new user types them: every command refuses each with one line and exit status 2.

Each row is (command line, fragment the message must hold).  The files the
rows name (a plain file where a folder is expected, tables of the wrong
format, target, input size or coverage, a corrupted table, garbage model
files, a checkpoint of other settings, ...) are made once per module.
Nothing here trains, searches or measures: every refusal comes first.
"""

import json
import pickle

import numpy as np
import pytest
import torch

from ednas import build_model
from ednas.checkpoint import save_checkpoint
from ednas.cli import main
from ednas.data import load_data
from ednas.latency import LatencyTable, build_table, space_ops
from ednas.nn.files import save_model
from ednas.runtime import export_onnx
from tests.conftest import TINY_SPACE

ARCH = "stem_k11_m1_c8_s1 | ir_k3_e2_c8_s2 | head_c16"
SYNTH = "synthetic:classes=4,n=64,size=32"
SMALL_BATCH = " --batch-size 8 --paths 1"


@pytest.fixture(scope="module")
def F(tmp_path_factory):
    """The files the malformed inputs point at."""
    d = tmp_path_factory.mktemp("bad")
    (d / "plain").write_text("a file, not a folder")
    (d / "garbage.pt").write_bytes(b"not a torch file" * 8)
    # CIFAR with the test batch only
    c10 = d / "c10test"
    c10.mkdir()
    batch = {b"data": np.zeros((20, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}
    (c10 / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    # tables
    (d / "notjson.json").write_text("{nope")
    (d / "wrongfmt.json").write_text(json.dumps({"format": "other-lut", "format_version": 1}))
    space = TINY_SPACE
    from ednas.arch.spec import parse_arch

    sp = parse_arch(space)
    full = {op.key: 0.01 for op in space_ops(sp, 32, 4)}
    LatencyTable(target="synthetic", input_size=32, entries=full, num_classes=4, space=sp.format()).save(d / "good.json")
    LatencyTable(target="synthetic", input_size=64, entries=full, num_classes=4).save(d / "size64.json")
    LatencyTable(target="synthetic", input_size=32, entries=dict(list(full.items())[:-3]), num_classes=4).save(d / "partial.json")
    good = json.loads((d / "good.json").read_text())
    first = sorted(good["entries"])[0]
    good["entries"][first]["ms"] = 5.0  # changed after it was written: the checksum no longer matches
    (d / "tampered.json").write_text(json.dumps(good))
    build_table("tda2x", sp, 32, 4, out=d / "tda2x.json")
    # a model file (untrained: only its format matters here), its ONNX without export.json, a damaged copy
    model = build_model(ARCH, 10)
    save_model(d / "model.pt", model, input_size=32, data=load_data("digits"))
    export_onnx(model.eval(), d / "onnx" / "model.onnx", 32)
    raw = bytearray((d / "model.pt").read_bytes())
    w = model.state_dict()["head.fc.weight"].numpy().tobytes()
    raw[raw.find(w) + 7] ^= 0x10  # one flipped bit inside the classifier's weights
    (d / "flipped.pt").write_bytes(bytes(raw))
    # YAML files
    (d / "bad.yaml").write_text("search: [1, 2\n")
    (d / "unknown.yaml").write_text("serch:\n  epochs: 2\n")
    (d / "section.yaml").write_text("search: 5\n")
    # a search folder whose checkpoint was written with other settings, and one of an unfinished run
    save_checkpoint(d / "other" / "checkpoint.pt", {"epoch": 1}, {"epochs": 99, "lr": 0.5})
    save_checkpoint(d / "unfinished" / "checkpoint.pt", {"epoch": 1}, {"epochs": 3})
    return d


def _s(f):
    return f"file:{f}"


# (command line with {F} for the files folder and {O} for a fresh output folder, fragment of the message)
CASES = [
    # ednas run
    ("run --out {F}/plain/sub", "'{F}/plain' is a file, not a folder"),
    ("run --out {O} --budget-ms -3", "--budget-ms must be > 0 ms, got -3.0"),
    ("run --out {O} --data " + SYNTH + " --target tda2x --budget-ms 1e9", "is outside what the space reaches at any width multiplier in [0.25, 3]: ["),
    ("run --out {O} --budget-ms 2 --budget-frac 0.3", "give --budget-ms or --budget-frac, not both"),
    ("run --out {O} --lut-check -1", "--lut-check must be >= 0"),
    ("run --out {O} --search.lr inf", "must be a finite number"),
    ("run --out {O} --config {F}/section.yaml", "section 'search' must be a mapping"),
    # ednas search
    ("search --out {O} --data synthetic:classes=0", "classes=0 is out of range; expected 2 <= classes"),
    ("search --out {O} --lr -1", "--lr must be > 0, got -1.0"),
    ("search --out {O} --paths 0", "--paths must be >= 1"),
    ("search --out {O} --threads -1", "--threads must be >= 0"),
    ("search --out {O} --epochs 5 --warmup-epochs 5", "must be in [0, epochs) = [0, 5)"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/notjson.json", "is not valid JSON"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/wrongfmt.json", "'format' is 'other-lut', expected 'ednas-lut'"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/size64.json", "built for input size 64, not 32"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/partial.json", "has no entry for operator"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/tampered.json", "tampered.json' is corrupt"),
    ("search --out {O} --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/good.json --budget-ms 1e-6",
     "--budget-ms 1e-06 is outside the achievable range ["),
    ("search --out {O} --data " + SYNTH + " --space stem_k11_c8|ir_k3_e2_c8|head_c8 --target tda2x", "has no choices to search"),
    ("search --out {F}/other --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/good.json --resume" + SMALL_BATCH,
     "was written with other settings"),
    ("search --out {F}/unfinished --data " + SYNTH + " --space " + TINY_SPACE.replace(" ", "") + " --target file:{F}/good.json" + SMALL_BATCH,
     "holds the checkpoint of an unfinished run (epoch 1 of 3): add --resume"),
    # ednas train
    ("train --out {F}/plain/sub", "'{F}/plain' is a file, not a folder"),
    ("train --out {O} --data synthetic:size=4", "size=4 is out of range"),
    ("train --out {O} --lr nan", "must be a finite number"),
    ("train --out {O} --epochs two", "must be int, got 'two'"),
    ("train --out {O} --batch-size 0", "--batch-size must be >= 1"),
    ("train --out {O} --max-skipped-steps 0", "--max-skipped-steps must be >= 1"),
    ("train --out {O} --config {F}/bad.yaml", "is not valid YAML at line 2"),
    ("train --out {O} --config {F}/unknown.yaml", "unknown key 'serch'"),
    ("train --out {O} --data cifar10:{F}/c10test", "no training batch in"),
    ("train --out {O} --data digits --input-size 64", "--input-size 64: data 'digits' has images of 32x32"),
    ("train --out {O} --data " + SYNTH + " --arch " + ARCH.replace(" ", "") + " --inherit {F}/garbage.pt", "garbage.pt' is corrupt or not a torch file"),
    # ednas eval
    ("eval --model {F}/none.pt", "none.pt' does not exist"),
    ("eval --model {F}/garbage.pt", "garbage.pt' is corrupt or not a torch file"),
    ("eval --model {F}/flipped.pt", "flipped.pt' is corrupt"),
    ("eval --model {F}/model.pt --split foo", "--split must be train, val or test"),
    ("eval --model {F}/onnx/model.onnx", "--data is needed to evaluate"),
    ("eval --model {F}/model.pt --json {F}/plain/e.json", "'{F}/plain' is a file, not a folder"),
    ("eval --model {F}/model.pt --data synthetic:classes=3", "has 10 outputs but data 'synthetic:classes=3' has 3 classes"),
    # ednas export
    ("export --model {F}/none.pt --out {O}", "none.pt' does not exist"),
    ("export --model {F}/model.pt --out {F}/plain/sub", "'{F}/plain' is a file, not a folder"),
    ("export --model {F}/model.pt --out {O} --quant int3", "--quant must be one of none, int8, int16"),
    ("export --model {F}/flipped.pt --out {O}", "flipped.pt' is corrupt"),
    # ednas lut
    ("lut build --out {F}/plain/lut.json --target tda2x", "'{F}/plain' is a file, not a folder"),
    ("lut build --out {O}/lut.json --target tda99", "target profile 'tda99' not found"),
    ("lut build --out {O}/lut.json --target tda2x --input-size 4", "the input side must be at least 8"),
    ("lut build --out {O}/lut.json --target tda2x --dtype i3", "--dtype 'i3' is unknown"),
    ("lut build --out {O}/lut.json --target tda2x --num-classes 0", "--num-classes must be >= 1"),
    ("lut build --out {O}/lut.json --target host-ort --min-time-s 0", "--min-time-s must be in (0, 10] seconds, got 0.0"),
    ("lut validate --lut {F}/tampered.json", "tampered.json' is corrupt"),
    ("lut validate --lut {F}/notjson.json", "is not valid JSON"),
    ("lut script --out {F}/plain/kit", "'{F}/plain' is a file, not a folder"),
    # ednas profile
    ("profile --model timm:nosuchnet --no-measure", "has no model 'nosuchnet'"),
    ("profile --model {F}/garbage.pt --no-measure", "garbage.pt' is corrupt or not a torch file"),
    ("profile --model cifar --target tda99 --no-measure", "target profile 'tda99' not found"),
    ("profile --model cifar --lut {F}/size64.json --no-measure", "built for input size 64, not 32"),
    ("profile --model cifar --threads 0 --no-measure", "--threads must be >= 1"),
]


def test_the_table_spans_every_command():
    assert len(CASES) >= 30
    assert {c.split()[0] for c, _ in CASES} == {"run", "search", "train", "eval", "export", "lut", "profile"}


@pytest.mark.parametrize("line, fragment", CASES, ids=[c for c, _ in CASES])
def test_malformed_input_is_one_line_and_exit_2(line, fragment, F, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [a.replace("{F}", str(F)).replace("{O}", str(out)) for a in line.split()]
    if argv[0] in ("run", "search", "train"):
        argv += ["--no-progress", "--no-tensorboard"]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert fragment.replace("{F}", str(F)) in err, err
    assert err.startswith("ednas: error: ") and "Traceback" not in err
    assert len([l for l in err.splitlines() if l.startswith("ednas: error")]) == 1 and err.count("\n") == 1, err
    assert not (out / "checkpoint.pt").exists() and not (out / "model.pt").exists()  # refused before any work


def test_debug_shows_the_traceback_with_its_cause(F, capsys):
    assert main(["eval", "--model", str(F / "flipped.pt"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "CheckpointError" in err and err.rstrip().splitlines()[-1].startswith("ednas: error: ")


def test_eval_needs_only_the_split_it_evaluates(F, tmp_path):
    """A CIFAR folder with only test_batch evaluates the test split; the other splits name what is missing."""
    model = build_model(ARCH, 10)
    save_model(tmp_path / "model.pt", model, input_size=32)
    js = tmp_path / "e.json"
    assert main(["eval", "--model", str(tmp_path / "model.pt"), "--data", f"cifar10:{F / 'c10test'}", "--split", "test", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["n"] == 20
    assert main(["eval", "--model", str(tmp_path / "model.pt"), "--data", f"cifar10:{F / 'c10test'}", "--split", "val"]) == 2
    data = load_data(f"cifar10:{F / 'c10test'}", splits=("test",))
    assert data.has("test") and not data.has("train")
    with pytest.raises(Exception, match="without its 'train' split"):
        data.labels("train")
    assert torch.equal(data.splits["test"][1], torch.arange(20) % 10)
