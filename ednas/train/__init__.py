"""Training and evaluation of fixed networks (eq. 16 recipe), checkpoints, metrics."""

from ednas.train.checkpoint import load_model, save_model
from ednas.train.evaluate import EvalConfig, run_eval
from ednas.train.trainer import TrainConfig, train

__all__ = ["EvalConfig", "TrainConfig", "load_model", "run_eval", "save_model", "train"]
