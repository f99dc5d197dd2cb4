"""The ``ednas`` command: thin sub-commands over the library.

Each sub-command has a settings dataclass (see :mod:`ednas.config`): its
fields are the flags, ``--config FILE.yaml`` sets any of them, flags win.
A user's mistake (or an output that cannot be written) ends in one line on
stderr and exit status 2.  SIGINT and SIGTERM end the command cleanly
(:mod:`ednas.signals`: no write is left half done) with exit status 130 or
143 and a line saying how to continue.  Nothing imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import sys
import traceback
from pathlib import Path

from ednas import __version__
from ednas.checkpoint import load_checkpoint
from ednas.config import add_config_args, resolve_config
from ednas.errors import DiskError, EdnasError
from ednas.io import disk_error
from ednas.signals import Interrupted, handling

__all__ = ["main"]


def _headline(command: str | None):
    """The keys the command line shows of a command's result (``None``: all of it)."""
    heads = _load("ednas.commands:HEADLINES") or {}
    return heads.get(command)


def _print_json(d: dict, keys=None) -> None:
    shown = {k: d[k] for k in (keys or d) if k in d}
    print(json.dumps(shown, indent=2, default=str))


# -- commands -----------------------------------------------------------------
# name -> (help, "module:ConfigClass", "module:function").  A function takes the
# resolved config and returns a dict that is printed as JSON (or None).  A
# command whose module is not there (a partial install) is left out.
COMMANDS: dict[str, tuple] = {
    "run": ("one command: LUT, search, train, export, quantize, report", "ednas.pipeline:RunConfig", "ednas.pipeline:run_cli"),
    "train": ("train a fixed network (preset, arch string or arch file)", "ednas.commands:TrainCommand", "ednas.commands:train_command"),
    "eval": ("evaluate a model file (.pt or .onnx) on a split", "ednas.train.evaluate:EvalConfig", "ednas.train.evaluate:run_eval"),
    "search": ("search an architecture under a latency budget (Alg. 1)", "ednas.commands:SearchCommand", "ednas.commands:search_command"),
    "lut": (
        "latency lookup tables: build, validate, script, serve",
        {
            "build": ("measure or compute a latency table for a space", "ednas.latency.cli:LutBuildConfig", "ednas.latency.cli:lut_build"),
            "validate": ("compare table predictions with end-to-end measurements", "ednas.latency.cli:LutValidateConfig", "ednas.latency.cli:lut_validate"),
            "script": ("write a standalone measuring script for a board", "ednas.latency.cli:LutScriptConfig", "ednas.latency.cli:lut_script"),
            "serve": ("serve this machine's latency measurements to ednas (remote:HOST:PORT targets)", "ednas.latency.cli:LutServeConfig",
                      "ednas.latency.cli:lut_serve"),
        },
    ),
    "export": ("fuse, export ONNX, quantize, check with ONNX Runtime", "ednas.commands:ExportCommand", "ednas.commands:export_command"),
    "profile": ("params, MACs, predicted and measured latency of a model", "ednas.report.profile:ProfileConfig", "ednas.report.profile:run_profile"),
}


def _load(ref: str):
    import importlib

    mod, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if e.name and mod.startswith(e.name):
            return None
        raise
    return getattr(module, attr, None)


def _resolved(entry) -> tuple | None:
    help_, cls_ref, func_ref = entry
    cls, func = _load(cls_ref), _load(func_ref)
    return (help_, cls, func) if cls is not None and func is not None else None


def _common() -> argparse.ArgumentParser:
    """Output options every command takes (also before the command name)."""
    c = argparse.ArgumentParser(add_help=False)
    g = c.add_argument_group("output")
    g.add_argument("-q", "--quiet", dest="_quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
    g.add_argument("-v", "--verbose", dest="_verbose", action="store_true", default=argparse.SUPPRESS, help="debug messages too")
    g.add_argument("--debug", dest="_debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the traceback (with its cause) instead of one line")
    return c


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        return msg if record.levelno < logging.WARNING else f"ednas: {record.levelname.lower()}: {msg}"


@contextlib.contextmanager
def _logging_to_stderr(level: int = logging.INFO):
    """While a command runs, the command line owns the ``ednas`` logger: its messages go to stderr, from ``level`` up, once each.

    The logger does not propagate meanwhile, so a root handler that another
    library installs during the command (ONNX Runtime's quantizer logs through
    ``logging.info``, which calls ``logging.basicConfig()`` on a bare root)
    cannot print every later message a second time.  Afterwards the logger is
    put back as it was: a library's logger, propagating to whatever the
    caller configured.
    """
    log = logging.getLogger("ednas")
    saved = log.level, log.propagate
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Formatter("%(message)s"))
    log.addHandler(h)
    log.setLevel(level)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(h)
        log.setLevel(saved[0])
        log.propagate = saved[1]


def _epilog(cls) -> str | None:
    """Help text after the flags: how sections are named, and a worked YAML example where the command has one."""
    example = getattr(cls, "EXAMPLE", None)
    if not example:
        return None
    return ("Settings are a tree: each section is one stage's settings, a flag --SECTION.FIELD for each field\n"
            "(underscores may be dashes); the flat flags above stand for some of them. --config FILE.yaml\n"
            "takes the same tree, nested by section; flags win over the file. For example:\n\n" + example)


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(
        prog="ednas",
        description="Latency-aware differentiable architecture search for embedded targets (E-DNAS).",
        parents=[common],
    )
    p.add_argument("--version", action="version", version=f"ednas {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if isinstance(entry[1], dict):  # a group of sub-sub-commands
            subs = {k: r for k, v in entry[1].items() if (r := _resolved(v)) is not None}
            if not subs:
                continue
            sp = sub.add_parser(name, help=entry[0], description=entry[0], parents=[common])
            ss = sp.add_subparsers(dest="sub_command", metavar="SUBCOMMAND")
            for sname, (shelp, scls, sfunc) in subs.items():
                ssp = ss.add_parser(sname, help=shelp, description=shelp, parents=[common])
                add_config_args(ssp, scls)
                ssp.set_defaults(_func=sfunc, _cls=scls)
            sp.set_defaults(_func=None, _group=sp)
        else:
            r = _resolved(entry)
            if r is None:
                continue
            help_, cls, func = r
            sp = sub.add_parser(name, help=help_, description=help_, parents=[common], epilog=_epilog(cls),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
            add_config_args(sp, cls)
            sp.set_defaults(_func=func, _cls=cls)
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
    debug = getattr(args, "_debug", False)
    level = (logging.DEBUG if getattr(args, "_verbose", False) or debug else
             logging.WARNING if getattr(args, "_quiet", False) else logging.INFO)
    with _logging_to_stderr(level):
        return _run(args, func, ns, debug)


def _run(args, func, ns: dict, debug: bool) -> int:
    """Resolve the settings, run the command, print its result; a user's mistake ends in one line and exit status 2."""
    cfg = None
    try:
        with handling():
            cfg = resolve_config(args._cls, ns)
            result = func(cfg)
        if isinstance(result, dict):
            _print_json(result, _headline(getattr(args, "command", None)))
        return 0
    except EdnasError as e:
        return _fail(e, debug)
    except OSError as e:  # a write outside ednas.io (a library's own file): still one line
        if e.errno not in _DISK_ERRNOS:
            raise
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return _fail(disk_error(e.filename or "?", e), debug)
        return _fail(DiskError(f"cannot access '{e.filename or '?'}': {e.strerror or e}"), debug)
    except KeyboardInterrupt as e:
        sig = e if isinstance(e, Interrupted) else Interrupted()
        print(f"ednas: interrupted by {sig.name}; {_resume_hint(args, cfg)}", file=sys.stderr)
        return sig.exit_code


_DISK_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EACCES, errno.EPERM, errno.EROFS)


def _fail(e: EdnasError, debug: bool) -> int:
    """One line on stderr (the traceback too with ``--debug``); exit status 2."""
    if debug:
        traceback.print_exc()
    msg = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    print(f"ednas: error: {msg}", file=sys.stderr)
    return 2


def _resume_hint(args, cfg) -> str:
    """How to continue after an interrupt, for the command that was interrupted."""
    command, sub = getattr(args, "command", None), getattr(args, "sub_command", None)
    out = getattr(cfg, "out", None)
    if command in ("search", "train") and out:
        ck = Path(out) / "checkpoint.pt"
        epochs = getattr(getattr(cfg, command, None), "epochs", "?")
        try:
            epoch = load_checkpoint(ck).get("epoch", "?")
        except EdnasError:
            return f"no epoch was complete, so there is no checkpoint in '{out}' yet: rerun the same command to start again"
        return (f"the checkpoint of epoch {epoch} of {epochs} is '{ck}': rerun the same command with --resume to continue "
                "from it (to the same result as an uninterrupted run)")
    if command == "run" and out:
        return (f"completed stages and the last checkpoint of the interrupted one are kept in '{out}': rerun the same command "
                "to continue (complete stages are skipped, the interrupted one resumes from its last epoch)")
    if command == "lut" and sub == "build" and out:
        return f"the operators measured so far are kept in '{out}': rerun the same command to measure the rest"
    return "no output was left half written; rerun the same command"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
