"""The ``ednas`` command: thin sub-commands over the library.

Each sub-command has a settings dataclass (see :mod:`ednas.config`): its
fields are the flags, ``--config FILE.yaml`` sets any of them, flags win.
A user's mistake ends in one line on stderr and exit status 2; an interrupt
in exit status 130 with a hint to ``--resume``.  Nothing imports this module.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from ednas import __version__
from ednas.config import add_config_args, resolve_config
from ednas.errors import EdnasError

__all__ = ["main"]


def _print_json(d: dict, keys=None) -> None:
    shown = {k: d[k] for k in (keys or d) if k in d}
    print(json.dumps(shown, indent=2, default=str))


# -- commands -----------------------------------------------------------------


def _train(args) -> int:
    from ednas.train.trainer import TrainConfig, train

    cfg = resolve_config(TrainConfig, args)
    m = train(cfg)
    _print_json(m, ["top1", "top5", "val_loss", "epochs", "params", "wall_s"])
    print(f"wrote {cfg.out}/model.pt, {cfg.out}/metrics.json", file=sys.stderr)
    return 0


def _eval(args) -> int:
    from ednas.train.evaluate import EvalConfig, run_eval

    cfg = resolve_config(EvalConfig, args)
    _print_json(run_eval(cfg))
    return 0


def _commands() -> dict[str, tuple[str, type | None, Callable]]:
    from ednas.train.evaluate import EvalConfig
    from ednas.train.trainer import TrainConfig

    cmds: dict[str, tuple[str, type | None, Callable]] = {
        "train": ("train a fixed network (preset, arch string or arch file)", TrainConfig, _train),
        "eval": ("evaluate a model file (.pt or .onnx) on a split", EvalConfig, _eval),
    }
    return cmds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ednas",
        description="Latency-aware differentiable architecture search for embedded targets (E-DNAS).",
    )
    p.add_argument("--version", action="version", version=f"ednas {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, cls, func) in _commands().items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if isinstance(cls, dict):  # a group of sub-sub-commands
            ss = sp.add_subparsers(dest="sub_command", metavar="SUBCOMMAND")
            for sname, (shelp, scls, sfunc) in cls.items():
                ssp = ss.add_parser(sname, help=shelp, description=shelp)
                add_config_args(ssp, scls)
                ssp.set_defaults(_func=sfunc)
            sp.set_defaults(_func=None, _group=sp)
        else:
            add_config_args(sp, cls)
            sp.set_defaults(_func=func)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "_func", None)
    if func is None:
        group = getattr(args, "_group", None)
        (group or parser).print_help()
        return 2
    ns = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in ("command", "sub_command")}
    try:
        return int(func(ns) or 0)
    except EdnasError as e:
        print(f"ednas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ednas: interrupted; completed work is saved, rerun the same command with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
