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


def test_shipped_paper_configs_load_into_the_run_tree_by_name():
    from ednas.config import config_file, shipped_configs
    from ednas.pipeline import RunConfig

    assert {"paper_imagenet", "paper_voc"} <= set(shipped_configs())
    cfg = resolve_config(RunConfig, {"out": "x", "config": "paper_imagenet"})
    # the paper's values (Sec. IV-A) land in their sections
    assert cfg.train.lr == 0.65 and cfg.train.label_smoothing == 0.1 and cfg.train.lr_warmup_epochs == 5.0
    assert (cfg.data.brightness, cfg.data.saturation, cfg.data.hue, cfg.data.contrast) == (0.4, 0.4, 0.1, 0.0)
    assert cfg.data.input_size == 224 and cfg.search.space == "imagenet" and cfg.latency.target == "tda2x" and cfg.search.paths == 2
    # flags win over the shipped file
    cfg = resolve_config(RunConfig, {"out": "x", "config": "paper_voc", "data.spec": "voc:/a+/b", "train.epochs": 3})
    assert cfg.data.spec == "voc:/a+/b" and cfg.train.epochs == 3 and cfg.data.spec.startswith("voc:")
    assert config_file("paper_voc").parent.name == "configs"
    with pytest.raises(EdnasError, match="shipped configs, by name: .*paper_imagenet"):
        resolve_config(RunConfig, {"out": "x", "config": "paper_cifar"})


def test_colour_jitter_settings_reach_the_folder_transform(tmp_path):
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image

    from ednas.data import DataConfig, folder_dataset, load_data

    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / "a" / "0.png")
    data = load_data(resolve_config(DataConfig, {"spec": f"folder:{tmp_path}", "input_size": 16, "hue": 0.1, "contrast": 0.0}))
    jitter = [t for t in folder_dataset(data, "train", True).transform.transforms if isinstance(t, T.ColorJitter)]
    assert len(jitter) == 1 and jitter[0].hue == (-0.1, 0.1) and jitter[0].contrast is None and jitter[0].brightness == (0.6, 1.4)
    assert not any(isinstance(t, T.ColorJitter) for t in folder_dataset(data, "val", False).transform.transforms)
    with pytest.raises(EdnasError, match="hue"):
        resolve_config(DataConfig, {"hue": 0.7})
