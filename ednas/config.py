"""Configuration: dataclass defaults <- ``--config file.yaml`` <- command-line flags.

Every sub-command has one dataclass of settings.  Its fields become flags
(``batch_size`` -> ``--batch-size``; booleans get ``--x``/``--no-x``), a YAML
file given by ``--config`` may set any of them (same names, underscores), and
a flag given on the command line wins over both.  An unknown key or a value of
the wrong type is an :class:`~ednas.errors.EdnasError` that names the key and
lists the valid ones.  The resolved settings are written as ``config.yaml``
beside every output (:func:`save_config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml

from ednas.errors import ConfigError, EdnasError
from ednas.io import atomic_write_text

__all__ = ["resolve_config", "add_config_args", "save_config", "config_dict", "coerce"]


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unwrap_optional(tp) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _type_name(tp) -> str:
    base, opt = _unwrap_optional(tp)
    name = getattr(base, "__name__", str(base))
    if typing.get_origin(base) in (list, tuple):
        name = f"list of {getattr(typing.get_args(base)[0], '__name__', '?')}"
    return f"{name} or null" if opt else name


def coerce(key: str, value: Any, tp, source: str) -> Any:
    """Check/convert ``value`` to the field type ``tp``; raise naming ``key``."""
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got null")
    bad = ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError as err:
                raise bad from err
        raise bad
    if base is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError as err:
                raise bad from err
        raise bad
    if base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if typing.get_origin(base) in (list, tuple):
        (inner,) = typing.get_args(base)[:1]
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, (list, tuple)):
            raise bad
        return tuple(coerce(f"{key}[{i}]", v, inner, source) for i, v in enumerate(value))
    return value


def add_config_args(parser: argparse.ArgumentParser, cls, positional: tuple[str, ...] = ()) -> None:
    """Add ``--config`` and one flag per field of dataclass ``cls``.

    Flags default to "not given" so that only what the user typed overrides
    the YAML file.
    """
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of settings (flags override it)")
    docs = _field_docs(cls)
    for name, tp in _field_types(cls).items():
        flag = "--" + name.replace("_", "-")
        base, _ = _unwrap_optional(tp)
        default = next(f for f in dataclasses.fields(cls) if f.name == name).default
        help_ = docs.get(name, "")
        if default is not dataclasses.MISSING:
            help_ = f"{help_} (default: {default})".strip()
        if base is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_)
        else:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar=name.upper(), help=help_)


def _field_docs(cls) -> dict[str, str]:
    """Per-field help from ``#:`` comments in the class source (best effort)."""
    import inspect

    docs: dict[str, str] = {}
    try:
        src = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return docs
    pending: list[str] = []
    for line in src:
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
        elif ":" in s and not s.startswith(("#", "def", "class", "@", '"')) and pending:
            docs[s.split(":")[0].strip()] = " ".join(pending)
            pending = []
        elif not s.startswith("#:"):
            pending = []
    return docs


def resolve_config(cls, args: argparse.Namespace | dict | None = None, yaml_path: str | None = None):
    """Defaults <- YAML file <- given flags, checked and typed."""
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    yaml_path = yaml_path or args.pop("config", None)
    types_ = _field_types(cls)
    valid = ", ".join(types_)
    values: dict[str, Any] = {}
    if yaml_path:
        p = Path(yaml_path)
        if not p.is_file():
            raise ConfigError(f"config file '{yaml_path}' does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"config file '{yaml_path}' is not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file '{yaml_path}': expected a mapping of settings, got {type(data).__name__}")
        for k, v in data.items():
            key = str(k).replace("-", "_")
            if key not in types_:
                raise ConfigError(f"config file '{yaml_path}': unknown key '{k}'; valid keys: {valid}")
            values[key] = coerce(key, v, types_[key], f"config file '{yaml_path}'")
    for k, v in args.items():
        if k in types_:
            values[k] = coerce(k, v, types_[k], f"--{k.replace('_', '-')}")
        elif k.startswith("_") or k in ("command", "func", "lut_command"):
            continue
        else:
            raise ConfigError(f"unknown setting '{k}'; valid settings: {valid}")
    missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join('--' + m.replace('_', '-') for m in missing)}")
    return cls(**values)


def config_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def save_config(cfg, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved settings as YAML beside the outputs (atomically)."""
    path = Path(out_dir) / name
    atomic_write_text(path, yaml.safe_dump(config_dict(cfg), sort_keys=False))
    return path
