"""The latency lookup table of eq. 11: operator key -> milliseconds, in a versioned file.

File format (JSON, ``format_version`` :data:`FORMAT_VERSION`)::

    {
      "format": "ednas-lut", "format_version": 1, "key_version": 1,
      "target": "host-ort", "input_size": 32, "num_classes": 10,
      "space": "stem_k11_... | head_c256", "dtype": "f32",
      "policy": "fallback",                       # or "mask": see targets.py
      "measurement": {"runtime": "onnxruntime", "threads": 1, "warmup": 10,
                      "repeats": 100, "rounds": 5, "statistic": "...", ...},
      "tools": {"onnxruntime": "1.32.0", ...}, "machine": {"cpu": ..., ...},
      "constant_ms": 0.009,                       # fitted per-network constant
      "constant": {"fitted_on": [...], "residuals_ms": [...], ...},
      "entries": {"dw_i16x16x96_o96_k5_s2_g96_e4_f32":
                      {"ms": 0.0024, "spread_ms": 0.0001, "n": 2500}, ...},
      "networks": {...},                          # optional: end-to-end timings
      "checksum": "sha256:..."                    # written by ednas: see below
    }

An entry may carry ``"supported": false`` (the target's accelerator does not
run it; ``ms`` is then the fallback cost) and ``"fallback": true``.  A table
is only valid for the input size it was built for, since every operator's
key holds its feature-map size.

``checksum`` is ``sha256:`` and the SHA-256 of the file's object without
that field, as :func:`ednas.io.canonical_json` writes it (sorted keys, no
spaces).  ednas writes it and checks it on reading: a table changed or
damaged after it was written is refused, naming the file.  A table without
one (the board script's output, a table written by hand) is read as it is;
to edit a table ednas wrote, delete its ``checksum`` field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ednas.errors import EdnasError, LatencyTableError
from ednas.io import atomic_write_json, canonical_json
from ednas.latency.ops import KEY_VERSION, Op
from ednas.runtime.interface import TARGETS

__all__ = ["FORMAT", "FORMAT_VERSION", "POLICIES", "LatencyTable", "load_table", "extend_hint", "table_checksum"]

FORMAT = "ednas-lut"
FORMAT_VERSION = 1
POLICIES = ("mask", "fallback")


def extend_hint(target: str, space: str | None, input_size: int, path: str | None) -> str:
    """The command that adds missing operators to a table (keeping the measured ones)."""
    space_arg = f'"{space}"' if space else "SPACE"
    out = path or "lut.json"
    if target.startswith("file:"):
        return (
            f"rerun 'ednas lut script --space {space_arg} --input {input_size} --out DIR' and DIR/measure_ops.py on the board "
            f"(it keeps measured entries), then 'ednas lut build --target {target} --space {space_arg} --input {input_size} --out {out}'"
        )
    return f"run 'ednas lut build --target {target} --space {space_arg} --input {input_size} --out {out}' (it measures only the missing operators)"


def table_checksum(d: Mapping) -> str:
    """``sha256:`` + the SHA-256 of a table's JSON object without its ``checksum`` field (see the module docstring)."""
    body = {k: v for k, v in d.items() if k != "checksum"}
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _ms(value: Any) -> float | None:
    """``value`` as a finite, non-negative number of ms, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def _entry(key: str, value: Any) -> dict:
    if _ms(value) is not None:
        return {"ms": _ms(value)}
    if isinstance(value, Mapping) and _ms(value.get("ms")) is not None:
        return dict(value, ms=_ms(value["ms"]))
    raise LatencyTableError(f"latency table entry '{key}': expected a finite number of ms >= 0 or {{\"ms\": ...}}, got {value!r}")


@dataclass
class LatencyTable:
    """Operator key -> ms, with the metadata of how it was obtained.

    Build one directly for tests (``LatencyTable(target="synthetic",
    input_size=32, entries={key: ms})``), from a file (:func:`load_table`) or
    with :func:`ednas.latency.build_table`.

    Args:
        target: what it describes (``host-ort``, ``tda2x``, ``file:...``).
        input_size: the network input side it was built for.
        entries: key -> ms, or key -> ``{"ms", "spread_ms", "n", "supported"}``.
        constant_ms: fitted per-network constant added to every prediction.
        policy: ``mask`` or ``fallback`` for unsupported candidates.
        dtype: dtype field of the keys it holds.
        meta: everything else in the file (measurement, tools, machine, ...).
        path: where it was loaded from (for messages).
    """

    target: str
    input_size: int
    entries: dict = field(default_factory=dict)
    constant_ms: float = 0.0
    policy: str = "fallback"
    dtype: str = "f32"
    num_classes: int | None = None
    space: str | None = None
    meta: dict = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self):
        self.entries = {k: _entry(k, v) for k, v in self.entries.items()}
        if self.policy not in POLICIES:
            raise LatencyTableError(f"latency table {self._where()}: policy '{self.policy}' is not one of {', '.join(POLICIES)}")
        self.input_size = int(self.input_size)
        self.constant_ms = float(self.constant_ms)

    @property
    def threads(self) -> int:
        """The thread count the table was measured with (1 when it does not say)."""
        return int((self.meta.get("measurement") or {}).get("threads") or self.meta.get("threads") or 1)

    @property
    def is_host(self) -> bool:
        """Whether the table was measured on this kind of host (so networks can be timed here to compare)."""
        return self.target in (*TARGETS, "host-torch")

    def _where(self) -> str:
        return f"'{self.path}'" if self.path else f"(target {self.target})"

    # -- lookups ---------------------------------------------------------------
    def __contains__(self, op: Op | str) -> bool:
        return (op.key if isinstance(op, Op) else op) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def missing(self, ops: Iterable[Op]) -> list[Op]:
        """The operators of ``ops`` without an entry, in order, without repeats."""
        seen, out = set(), []
        for op in ops:
            if op.key not in self.entries and op.key not in seen:
                seen.add(op.key)
                out.append(op)
        return out

    def missing_error(self, op: Op, needed_by: str = "", n_missing: int = 1) -> EdnasError:
        more = f" ({n_missing - 1} more operator(s) are missing too)" if n_missing > 1 else ""
        by = f", needed by {needed_by}" if needed_by else ""
        name = f"latency table '{self.path}'" if self.path else "the latency table"
        return LatencyTableError(
            f"{name} (target {self.target}, input {self.input_size}) has no entry for operator "
            f"'{op.key}' ({op.describe()}){by}{more}; to extend the table, "
            + extend_hint(self.target, self.space, self.input_size, self.path)
        )

    def ms(self, op: Op) -> float:
        """Milliseconds of ``op``; a missing key is an EdnasError naming it."""
        e = self.entries.get(op.key)
        if e is None:
            raise self.missing_error(op)
        return e["ms"]

    def supported(self, op: Op) -> bool:
        """Whether the target's accelerator runs ``op`` (``ms`` is else its fallback cost)."""
        e = self.entries.get(op.key)
        return True if e is None else bool(e.get("supported", True))

    # -- file --------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "key_version": KEY_VERSION,
            "target": self.target,
            "input_size": self.input_size,
            "num_classes": self.num_classes,
            "space": self.space,
            "dtype": self.dtype,
            "policy": self.policy,
        }
        d.update({k: v for k, v in self.meta.items() if k not in d and k not in ("entries", "constant_ms")})
        d["constant_ms"] = self.constant_ms
        d["entries"] = {k: self.entries[k] for k in sorted(self.entries)}
        d["checksum"] = table_checksum(json.loads(canonical_json(d)))
        return d

    def save(self, path) -> Path:
        """Write the table atomically (an interrupted write leaves the old file)."""
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping, path: str | None = None, input_size: int | None = None) -> "LatencyTable":
        where = f"'{path}'" if path else "(in memory)"
        if not isinstance(d, Mapping):
            raise LatencyTableError(f"latency table {where}: expected a JSON object, got {type(d).__name__}")
        if "checksum" in d and d["checksum"] != table_checksum(d):
            raise LatencyTableError(
                f"latency table {where} is corrupt: its contents do not match the checksum written with them (the file was "
                "changed or damaged after ednas wrote it); rebuild it with 'ednas lut build', or, if you edited it on purpose, "
                "delete its 'checksum' field"
            )
        if d.get("format", FORMAT) != FORMAT:
            raise LatencyTableError(f"latency table {where}: 'format' is '{d.get('format')}', expected '{FORMAT}'")
        fv = d.get("format_version")
        if fv != FORMAT_VERSION:
            raise LatencyTableError(
                f"latency table {where}: format_version {fv!r}, this ednas reads format_version {FORMAT_VERSION}; "
                "rebuild it with 'ednas lut build' (or the measuring script of this ednas version)"
            )
        kv = d.get("key_version", KEY_VERSION)
        if kv != KEY_VERSION:
            raise LatencyTableError(f"latency table {where}: key_version {kv!r}, this ednas uses operator key scheme v{KEY_VERSION}; rebuild the table")
        for req in ("target", "input_size", "entries"):
            if req not in d:
                raise LatencyTableError(f"latency table {where}: required field '{req}' is missing")
        if not isinstance(d["entries"], Mapping):
            raise LatencyTableError(f"latency table {where}: 'entries' must be an object of key -> ms")
        if not isinstance(d["input_size"], int) or isinstance(d["input_size"], bool) or d["input_size"] < 1:
            raise LatencyTableError(f"latency table {where}: 'input_size' must be a positive integer, got {d['input_size']!r}")
        if not isinstance(d["target"], str) or not d["target"]:
            raise LatencyTableError(f"latency table {where}: 'target' must be a non-empty string, got {d['target']!r}")
        constant = d.get("constant_ms") or 0.0
        if isinstance(constant, bool) or not isinstance(constant, (int, float)) or not math.isfinite(float(constant)):
            raise LatencyTableError(f"latency table {where}: 'constant_ms' must be a finite number, got {constant!r}")
        for key in ("policy", "dtype", "space"):
            if d.get(key) is not None and not isinstance(d[key], str):
                raise LatencyTableError(f"latency table {where}: '{key}' must be a string, got {d[key]!r}")
        nc = d.get("num_classes")
        if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
            raise LatencyTableError(f"latency table {where}: 'num_classes' must be a positive integer, got {nc!r}")
        if input_size is not None and int(d["input_size"]) != int(input_size):
            raise LatencyTableError(
                f"latency table {where} was built for input size {d['input_size']}, not {input_size}; "
                f"every operator key holds its feature-map size, so build a table for {input_size}: "
                + extend_hint(str(d["target"]), d.get("space"), int(input_size), None)
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"meta", "path", "entries"}
        meta = {k: v for k, v in d.items() if k not in known and k not in ("format", "format_version", "key_version", "entries", "checksum")}
        t = cls(
            target=str(d["target"]),
            input_size=int(d["input_size"]),
            entries=dict(d["entries"]),
            constant_ms=float(constant),
            policy=d.get("policy") or "fallback",
            dtype=d.get("dtype") or "f32",
            num_classes=d.get("num_classes"),
            space=d.get("space"),
            meta=meta,
            path=path,
        )
        for k in t.entries:  # fail early on a key of another scheme
            Op.from_key(k)
        return t


def load_table(path, input_size: int | None = None) -> LatencyTable:
    """Read a table file (also the board script's output).

    Args:
        path: the JSON file; a ``file:`` prefix is accepted.
        input_size: if given, the table must have been built for it.

    Raises:
        EdnasError: file missing or unreadable, another format or key
            version, or another input size; each names the file.
    """
    p = str(path)
    if p.startswith("file:"):
        p = p[5:]
    if not Path(p).is_file():
        raise LatencyTableError(f"latency table '{p}' does not exist; build one with 'ednas lut build --target host-ort --space SPACE --input N --out {p}'")
    try:
        data = json.loads(Path(p).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LatencyTableError(f"latency table '{p}' is not valid JSON: {e}") from e
    except (OSError, RecursionError) as e:
        raise LatencyTableError(f"latency table '{p}' cannot be read ({type(e).__name__}: {e})") from e
    return LatencyTable.from_dict(data, path=p, input_size=input_size)
