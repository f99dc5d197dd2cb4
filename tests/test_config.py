from dataclasses import dataclass
from typing import Optional

import pytest
import yaml

from ednas.commands import TrainCommand
from ednas.config import resolve_config, save_config
from ednas.errors import EdnasError
from ednas.train.trainer import TrainConfig


def test_precedence_defaults_then_yaml_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 3\nlr: 0.05\nbatch-size: 32\n")
    cfg = resolve_config(TrainCommand, {"out": "o", "lr": "0.2"}, yaml_path=str(f))
    assert cfg.train.epochs == 3  # from the file
    assert cfg.train.lr == 0.2  # the flag wins
    assert cfg.train.batch_size == 32  # dashes allowed in the file
    assert cfg.train.label_smoothing == TrainConfig.label_smoothing  # default
    save_config(cfg, tmp_path)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["train"]["lr"] == 0.2 and saved["train"]["epochs"] == 3 and saved["out"] == "o"
    # the saved config reproduces the same settings
    assert resolve_config(TrainCommand, {}, yaml_path=str(tmp_path / "config.yaml")) == cfg


def test_unknown_key_lists_valid_ones(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("out: o\nepochz: 3\n")
    with pytest.raises(EdnasError) as e:
        resolve_config(TrainCommand, {}, yaml_path=str(f))
    msg = str(e.value)
    assert "unknown key 'epochz'" in msg and "epochs" in msg and "batch_size" in msg and "c.yaml" in msg


@pytest.mark.parametrize("text, fragment", [
    ("out: o\nepochs: many\n", "'epochs' must be int"),
    ("out: o\nlr: [1]\n", "'lr' must be float"),
    ("out: o\nresume: maybe\n", "'resume' must be bool"),
    ("out: o\nepochs: true\n", "'epochs' must be int"),
    ("- a\n- b\n", "expected a mapping"),
    ("out: [unclosed\n", "not valid YAML"),
])
def test_wrong_types_name_the_key(tmp_path, text, fragment):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(EdnasError, match=fragment):
        resolve_config(TrainCommand, {}, yaml_path=str(f))


def test_flag_types_and_missing_required():
    with pytest.raises(EdnasError, match="--batch-size.*must be int"):
        resolve_config(TrainCommand, {"out": "o", "batch_size": "1.5"})
    with pytest.raises(EdnasError, match="missing required setting.*--out"):
        resolve_config(TrainCommand, {})
    with pytest.raises(EdnasError, match="does not exist"):
        resolve_config(TrainCommand, {"out": "o"}, yaml_path="/nope.yaml")


def test_optional_and_list_fields():
    @dataclass
    class C:
        a: Optional[int] = None
        b: tuple[int, ...] = (1, 2)

    assert resolve_config(C, {"a": "4", "b": "3,5"}) == C(a=4, b=(3, 5))
    assert resolve_config(C, {"a": None}).a is None
