"""Configuration: dataclass defaults <- ``--config file.yaml`` <- command-line flags.

Every command has one settings class, a dataclass.  A field whose type is
itself a dataclass is a **section** (``ednas run`` has ``data``, ``latency``,
``timing``, ``search``, ``train``, ``export``, ``baselines``); sections hold
the stage's own settings class, so each setting is declared once, with one
name and one default, where the stage that uses it lives.

Flags.  Every field is a flag named by its path: ``--search.lr``,
``--train.lr-warmup-epochs`` (underscores may be written as dashes).  A
command may also offer short names:

* ``FLAT``: sections whose fields are also flags without the section prefix
  (``ednas search --lr`` is ``--search.lr``); the section's ``PRIMARY``
  field is named after the section itself (``--data digits`` is
  ``--data.spec digits``);
* ``ALIASES``: ``{"search_epochs": "search.epochs", "batch_size":
  ("search.batch_size", "train.batch_size")}``: a name standing for one or
  several paths (the flags ``ednas run`` had before it had sections).

A more specific flag wins over an alias given on the same command line.

YAML.  ``--config FILE.yaml`` (or the name of a config shipped in
``ednas/configs``, e.g. ``--config paper_imagenet``) is nested by the same section names; a
section's primary field may be given as a scalar (``data: cifar10:DIR``),
and every flag name is also accepted as a top-level key (``search_epochs:
5``).  An unknown key, a value of the wrong type or out of range is a
:class:`~ednas.errors.ConfigError` that names it (and, for an unknown key,
lists the valid ones).

Ranges and conflicts: a section may define ``check(self, name)``, where
``name(field)`` gives the flag the user knows the field by; it raises
:class:`ConfigError` naming it.  :func:`given` tells which paths the user set
(in the file or on the command line), so a check can refuse two settings
that conflict even when one of them equals its default.

The resolved tree is written as ``config.yaml`` beside every output
(:func:`save_config`), each field once.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import math
import types
import typing
from pathlib import Path
from typing import Any, Iterator, Union

import yaml

from ednas.errors import ConfigError
from ednas.io import atomic_write_text

__all__ = [
    "add_config_args",
    "coerce",
    "config_dict",
    "flag_of",
    "given",
    "leaves",
    "resolve_config",
    "save_config",
    "config_file",
    "shipped_configs",
    "yaml_example",
]

_GIVEN = "_ednas_given"
_FLAGS = "_ednas_flags"


# ---------------------------------------------------------------------------
# types


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


def _hints(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _is_section(tp) -> bool:
    base, _ = _unwrap_optional(tp)
    return dataclasses.is_dataclass(base) and isinstance(base, type)


def coerce(key: str, value: Any, tp, source: str) -> Any:
    """Check/convert ``value`` to the field type ``tp``; raise :class:`ConfigError` naming ``key``."""
    base, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got null")
    bad = ConfigError(f"{source}: '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError as err:
                raise bad from err
        if not isinstance(value, int):
            raise bad
        if not -(2**63) <= value < 2**63:
            raise ConfigError(f"{source}: '{key}' {value} is out of range")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad
        try:
            v = float(value)
        except (ValueError, OverflowError) as err:
            raise bad from err
        if not math.isfinite(v):  # nan and inf pass every range check written as a comparison
            raise ConfigError(f"{source}: '{key}' must be a finite number, got {value!r}")
        return v
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


# ---------------------------------------------------------------------------
# the tree of fields


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One setting: its dotted path, type, default and help."""

    path: str
    type: Any
    default: Any
    help: str

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def section(self) -> str:
        return self.path.rpartition(".")[0]


@functools.lru_cache(maxsize=None)
def _field_docs(cls) -> dict[str, str]:
    """Per-field help from ``#:`` comments above the fields (this class and its bases); read once per class."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
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


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def leaves(cls, prefix: str = "") -> Iterator[Leaf]:
    """Every leaf setting of the settings class ``cls``, depth first, with its dotted path."""
    docs = _field_docs(cls)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        tp = hints[f.name]
        path = f"{prefix}{f.name}"
        if _is_section(tp):
            yield from leaves(_unwrap_optional(tp)[0], path + ".")
        else:
            d = _default(f)
            yield Leaf(path, tp, d, docs.get(f.name, ""))


def _sections(cls) -> dict[str, type]:
    """``{section path: section class}`` of ``cls`` (nested sections too)."""
    out: dict[str, type] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(tp):
            sub = _unwrap_optional(tp)[0]
            out[f.name] = sub
            out.update({f"{f.name}.{k}": v for k, v in _sections(sub).items()})
    return out


def _names(cls) -> dict[str, tuple[str, ...]]:
    """Every name a setting can be given by (besides its path) -> the paths it sets.

    Built from the class's ``FLAT`` sections and ``ALIASES``; a clash between
    two short names is a programming error (raised as ``ValueError``).
    """
    paths = {leaf.path for leaf in leaves(cls)}
    sections = _sections(cls)
    names: dict[str, tuple[str, ...]] = {}

    def add(name: str, targets: tuple[str, ...], why: str) -> None:
        if name in paths and (name,) != targets:
            raise ValueError(f"{cls.__name__}: short name '{name}' ({why}) is also a setting's path")
        if name in names and names[name] != targets:
            raise ValueError(f"{cls.__name__}: short name '{name}' ({why}) stands for {names[name]} already")
        names[name] = targets

    for sec in getattr(cls, "FLAT", ()):
        sc = sections[sec]
        primary = getattr(sc, "PRIMARY", None)
        for leaf in leaves(sc, sec + "."):
            if leaf.section != sec:
                continue
            add(sec if leaf.name == primary else leaf.name, (leaf.path,), f"flat section {sec}")
    for sec, sc in sections.items():  # a section's primary field is always named by the section
        primary = getattr(sc, "PRIMARY", None)
        if primary and "." not in sec:
            add(sec, (f"{sec}.{primary}",), f"primary field of {sec}")
    for alias, targets in getattr(cls, "ALIASES", {}).items():
        t = (targets,) if isinstance(targets, str) else tuple(targets)
        for p in t:
            if p not in paths:
                raise ValueError(f"{cls.__name__}: alias '{alias}' names unknown setting '{p}'")
        add(alias, t, "alias")
    return names


def flag_of(cls, path: str) -> str:
    """The flag a user would type for setting ``path`` of command class ``cls`` (its shortest name)."""
    short = [n for n, t in _names(cls).items() if t == (path,)]
    name = min(short, key=len) if short else path
    return "--" + name.replace("_", "-")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ---------------------------------------------------------------------------
# argparse


def add_config_args(parser: argparse.ArgumentParser, cls) -> None:
    """Add ``--config`` and one flag per setting of ``cls`` (grouped by section), plus its short names.

    Flags default to "not given" so that only what the user typed overrides
    the YAML file.
    """
    parser.add_argument("--config", metavar="FILE.yaml", help="YAML file of settings, or the name of a shipped one (paper_imagenet, paper_voc); flags override it")
    names = _names(cls)
    by_path: dict[str, list[str]] = {}
    for n, t in names.items():
        if len(t) == 1:
            by_path.setdefault(t[0], []).append(n)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for leaf in leaves(cls):
        sec = leaf.section
        group = parser
        if sec:
            if sec not in groups:
                doc = (inspect.getdoc(_sections(cls)[sec]) or "").split("\n")[0]
                groups[sec] = parser.add_argument_group(f"{sec} settings", doc or None)
            group = groups[sec]
        opts = [_flag(n) for n in sorted(by_path.get(leaf.path, []), key=len)]
        dotted = "--" + leaf.path.replace("_", "-")
        opts = opts + ([dotted] if dotted not in opts else [])
        help_ = leaf.help
        if leaf.default is not dataclasses.MISSING:
            help_ = f"{help_} (default: {leaf.default})".strip()
        base, _ = _unwrap_optional(leaf.type)
        kw = dict(dest=leaf.path, default=argparse.SUPPRESS, help=help_)
        if base is bool:
            group.add_argument(*opts, action=argparse.BooleanOptionalAction, **kw)
        else:
            group.add_argument(*opts, metavar=leaf.name.upper(), **kw)
    for n, t in names.items():
        if len(t) > 1:  # an alias for several settings
            base, _ = _unwrap_optional(next(lf.type for lf in leaves(cls) if lf.path == t[0]))
            kw = dict(dest=f"alias:{n}", default=argparse.SUPPRESS, help=f"sets {', '.join('--' + p for p in t)}")
            if base is bool:
                parser.add_argument(_flag(n), action=argparse.BooleanOptionalAction, **kw)
            else:
                parser.add_argument(_flag(n), metavar=n.upper(), **kw)


def yaml_example(cls, sections: tuple[str, ...] = ()) -> str:
    """A nested YAML file of ``cls``'s defaults (only ``sections``, if given), for help texts and docs."""
    tree: dict = {}
    for leaf in leaves(cls):
        top = leaf.path.split(".")[0]
        if sections and top not in sections:
            continue
        if leaf.default is dataclasses.MISSING:
            continue
        node = tree
        parts = leaf.path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = list(leaf.default) if isinstance(leaf.default, tuple) else leaf.default
    return yaml.safe_dump(tree, sort_keys=False)


# ---------------------------------------------------------------------------
# resolution


def _set(tree: dict, path: str, value: Any) -> None:
    node = tree
    parts = path.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


#: configs shipped with ednas, loadable by name: ``--config paper_imagenet``
SHIPPED_CONFIGS = Path(__file__).parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the configs shipped in ``ednas/configs`` (``--config NAME``)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def config_file(path: str) -> Path:
    """The file ``--config`` names: a path, or the name of a shipped config when no such file exists."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    shipped = SHIPPED_CONFIGS / f"{Path(path).stem}.yaml"
    if "/" not in str(path) and shipped.is_file():
        return shipped
    raise ConfigError(f"config file '{path}' does not exist (shipped configs, by name: {', '.join(shipped_configs())})")


def _yaml_values(cls, path: str) -> dict[str, Any]:
    """``{leaf path: raw value}`` from a YAML file (nested sections, scalars for primary fields, flat names)."""
    p = config_file(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML{at}: {what}") from e
    except (UnicodeDecodeError, RecursionError) as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {type(e).__name__}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}': expected a mapping of settings, got {type(data).__name__}")
    paths = {leaf.path for leaf in leaves(cls)}
    sections = _sections(cls)
    names = _names(cls)
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            key = str(k).replace("-", "_")
            path_ = prefix + key
            if path_ in sections and isinstance(v, dict):
                walk(v, path_ + ".")
            elif path_ in sections and not getattr(sections[path_], "PRIMARY", None):
                raise ConfigError(f"config file '{path}': section '{path_}' must be a mapping of its settings, got {v!r}")
            elif path_ in sections and getattr(sections[path_], "PRIMARY", None):
                out[f"{path_}.{sections[path_].PRIMARY}"] = v
            elif path_ in paths:
                out[path_] = v
            elif not prefix and key in names:
                for t in names[key]:
                    out.setdefault(t, v)  # a full path in the same file wins over a short name
            else:
                here = prefix.rstrip(".")
                valid = sorted({x[len(prefix):].split(".")[0] for x in paths if x.startswith(prefix)} | (set(names) if not prefix else set()))
                where = f" in section '{here}'" if here else ""
                raise ConfigError(f"config file '{path}': unknown key '{prefix}{k}'{where}; valid keys: {', '.join(valid)}")

    walk(data, "")
    return out


def resolve_config(cls, args: argparse.Namespace | dict | None = None, yaml_path: str | None = None):
    """Defaults <- YAML file <- given flags (or a dict of paths/short names), checked and typed.

    ``args`` maps setting paths (``search.lr``), short names (``lr`` where the
    command has them) or ``alias:NAME`` entries to values.  Returns an
    instance of ``cls`` whose sections are instances of their classes;
    :func:`given` on it tells which settings were set.
    """
    args = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    yaml_path = yaml_path or args.pop("config", None)
    all_leaves = {leaf.path: leaf for leaf in leaves(cls)}
    names = _names(cls)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if yaml_path:
        for k, v in _yaml_values(cls, yaml_path).items():
            values[k] = v
            sources[k] = f"config file '{yaml_path}'"
    # short names first, then full paths: the more specific flag wins
    explicit: dict[str, Any] = {}
    for k, v in args.items():
        if k.startswith("alias:"):
            k = k[len("alias:"):]
        if k in ("command", "func", "sub_command", "lut_command") or k.startswith("_"):
            continue
        kk = k.replace("-", "_")
        if kk in all_leaves and kk not in names:
            explicit[kk] = v
        elif kk in names:
            for t in names[kk]:
                values[t] = v
                sources[t] = _flag(kk)
        elif kk in all_leaves:
            explicit[kk] = v
        else:
            valid = sorted(set(names) | {p for p in all_leaves if "." not in p})
            raise ConfigError(f"unknown setting '{k}'; valid settings: {', '.join(valid)} (and every --SECTION.FIELD)")
    for k, v in explicit.items():
        values[k] = v
        sources[k] = "--" + k.replace("_", "-")
    tree: dict = {}
    for path, v in values.items():
        leaf = all_leaves[path]
        _set(tree, path, coerce(flag_of(cls, path).lstrip("-"), v, leaf.type, sources[path]))
    missing = [p for p, leaf in all_leaves.items() if leaf.default is dataclasses.MISSING and p not in values]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(flag_of(cls, m) for m in missing)}")
    cfg = _build(cls, tree)
    _mark_given(cfg, frozenset(values), "")
    _check(cfg, cls, "")
    return cfg


def _mark_given(cfg, paths: frozenset, prefix: str) -> None:
    object.__setattr__(cfg, _GIVEN, frozenset(p[len(prefix):] for p in paths if p.startswith(prefix)))
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if _is_section(hints[f.name]) and getattr(cfg, f.name) is not None:
            _mark_given(getattr(cfg, f.name), paths, f"{prefix}{f.name}.")


def _build(cls, tree: dict):
    hints = _hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        tp = hints[f.name]
        if _is_section(tp):
            sub = _unwrap_optional(tp)[0]
            kw[f.name] = _build(sub, tree.get(f.name, {}))
        elif f.name in tree:
            kw[f.name] = tree[f.name]
    return cls(**kw)


def _check(cfg, root_cls, prefix: str) -> None:
    """Run every section's ``check(name)`` (deepest first), naming fields by the user's flags."""
    hints = _hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if _is_section(hints[f.name]) and getattr(cfg, f.name) is not None:
            _check(getattr(cfg, f.name), root_cls, f"{prefix}{f.name}.")
    check = getattr(cfg, "check", None)
    if callable(check):
        check(lambda name: flag_of(root_cls, prefix + name))


def given(cfg, path: str | None = None):
    """The set of paths the user set (file or flags); with ``path``, whether that one was set."""
    g = getattr(cfg, _GIVEN, frozenset())
    return g if path is None else path in g


def config_dict(cfg) -> dict:
    """The settings as a nested dict of plain values (tuples as lists)."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def save_config(cfg, out_dir: str | Path, name: str = "config.yaml") -> Path:
    """Write the resolved settings as nested YAML beside the outputs (atomically)."""
    path = Path(out_dir) / name
    atomic_write_text(path, yaml.safe_dump(config_dict(cfg), sort_keys=False))
    return path
