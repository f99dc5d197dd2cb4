"""The latency settings of a command: target, budget, table precision, table cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ednas.config import given
from ednas.errors import ConfigError
from ednas.latency.ops import DTYPES, dtype_name

__all__ = ["LatencyConfig", "table_precision", "QUANT_DTYPE"]

#: the table dtype of each ``--export.quant`` mode
QUANT_DTYPE = {"none": "f32", "int8": "i8", "int16": "i16"}


@dataclass
class LatencyConfig:
    """Where latency comes from, and the budget the search must meet."""

    #: latency target: host-ort, host-openvino (OpenVINO CPU plugin; the openvino extra), host-litert (LiteRT, XNNPACK; the litert
    #: extra), host-torch, tda2x, tda4vm, roofline[:FILE.yaml], file:BOARD_TABLE.json, remote:HOST:PORT (a device's
    #: measurement server; token from EDNAS_REMOTE_TOKEN or its token file), or a lut.json
    target: str = "host-ort"
    #: latency budget in ms (replaces --budget-frac; give one of the two)
    budget_ms: Optional[float] = None
    #: budget as a fraction of the way from the space's smallest (0) to its largest (1) network on the target
    budget_frac: float = 0.5
    #: precision the table prices (and the budget is for): f32, i8, i16 (f16 for analytic profiles);
    #: default on host-ort: what 'ednas run' deploys (--quant int8: i8), f32 for 'ednas search'; elsewhere the profile's or table's own
    dtype: Optional[str] = None
    #: folder of cached measured tables (host targets), one sub-folder per target, space, input size and precision
    cache: str = "~/.cache/ednas/lut"
    #: token file of a remote:HOST:PORT target's server (default: EDNAS_REMOTE_TOKEN, else the file EDNAS_REMOTE_TOKEN_FILE, else the
    #: server's default token file)
    remote_token_file: Optional[str] = None
    #: re-centre a --budget-ms inside the space's range but within this fraction of its top (0 to < 0.5): widths are scaled up
    #: as for a budget above the range, multiplier 1 among the candidates (ednas.latency.fit); 0: only budgets outside.
    #: 0.25 by default: Pareto v2 measured it ahead of 0 at the top of the range (docs/search.md)
    recentre: float = 0.25

    def check(self, name) -> None:
        if self.budget_ms is not None and given(self, "budget_frac"):
            raise ConfigError(f"give {name('budget_ms')} or {name('budget_frac')}, not both")
        if self.budget_ms is not None and not self.budget_ms > 0:
            raise ConfigError(f"{name('budget_ms')} must be > 0 ms, got {self.budget_ms}")
        if not 0.0 <= self.budget_frac <= 1.0:
            raise ConfigError(f"{name('budget_frac')} {self.budget_frac} must be in [0, 1]; 0 = the space's smallest network, 1 = its largest")
        if not 0.0 <= self.recentre < 0.5:
            raise ConfigError(f"{name('recentre')} {self.recentre} must be in [0, 0.5): the fraction of the range below its top in which a budget is re-centred")
        if not self.target.strip():
            raise ConfigError(f"{name('target')} must name a target or a table file")
        dtype = dtype_name(self.dtype)
        if dtype is not None and dtype not in DTYPES:
            raise ConfigError(f"{name('dtype')} must be one of {', '.join(DTYPES)} (or int8, int16, fp32, fp16), got '{self.dtype}'")
        if (self.target == "host-ort" or self.target.startswith("remote:")) and dtype not in (None, "f32", "i8", "i16"):
            raise ConfigError(f"{name('dtype')} {self.dtype}: {self.target} measures f32, i8 and i16 tables")
        if self.target == "host-torch" and dtype not in (None, "f32"):
            raise ConfigError(f"{name('dtype')} {self.dtype}: {self.target} measures f32 tables only")
        if self.target == "host-litert" and dtype not in (None, "f32", "i8"):
            raise ConfigError(f"{name('dtype')} {self.dtype}: {self.target} measures f32 and i8 tables (LiteRT runs float32 and full-integer int8)")
        if self.target == "host-openvino" and dtype not in (None, "f32", "i8"):
            raise ConfigError(f"{name('dtype')} {self.dtype}: {self.target} measures f32 and i8 tables (OpenVINO has no 16-bit integer kernels)")


def table_precision(cfg: LatencyConfig, quant: str = "none", pow2: bool = False, per_channel: bool = True,
                    weight_bits: int | None = None) -> tuple[str | None, dict | None]:
    """The dtype and fixed-point options of the table a command searches with.

    ``cfg.dtype`` when given; else, on ``host-ort`` and ``remote:``, the precision of the file
    that will be deployed (``quant``: ``int8`` -> ``i8``, ``int16`` -> ``i16``,
    ``none`` -> ``f32``), so the budget holds for the deployed file; on
    ``host-litert`` and ``host-openvino`` likewise (``none`` or ``int8``: the ``.tflite`` / ``.onnx`` it deploys); on
    ``host-torch`` ``f32``; on other targets ``None`` (the profile's or
    table's own).  The options (``per_channel``, ``pow2``, ``weight_bits``,
    as ``ednas export``'s) apply to a fixed-point host table.
    """
    dtype = dtype_name(cfg.dtype)
    ort = cfg.target == "host-ort" or cfg.target.startswith("remote:")  # measured with ONNX Runtime, here or on the device
    measured = ort or cfg.target in ("host-litert", "host-openvino")  # tables in the deployed file's precision
    if dtype is None and (measured or cfg.target == "host-torch"):
        dtype = QUANT_DTYPE.get(quant, "f32") if measured else "f32"
    options = None
    if dtype in ("i8", "i16") and measured:
        options = {"per_channel": bool(per_channel and not pow2), "pow2": bool(pow2), "weight_bits": weight_bits}
    return dtype, options
