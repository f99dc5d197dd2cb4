"""Where the work runs: the device, mixed precision, and loader/thread sizes taken from the machine.

``--device auto|cpu|cuda|cuda:N`` and ``--amp auto|off|bf16|fp16`` are one
settings section, :class:`DeviceConfig`, shared by ``ednas train``,
``search``, ``run``, ``eval`` and ``profile``.  :func:`resolve_hardware`
turns it into a :class:`Hardware`: the ``torch.device`` everything of a step
lives on (weights, alpha, Gumbel noise, the latency model's tensors, the
data) and the autocast dtype.

Decisions:

* ``auto`` is CUDA when a CUDA device is present, else the CPU.  Under
  ``torchrun`` ``cuda`` means ``cuda:LOCAL_RANK`` (one GPU per process); an
  explicit ``cuda:N`` with several local processes would put them all on one
  GPU and is refused.
* ``--amp auto`` is bf16 on CUDA (fp16 on a GPU without bf16) and off on the
  CPU.  fp16 needs a gradient scaler and is offered on CUDA only; bf16 has
  fp32's range and needs none.  Only the forward passes of weight steps and
  evaluation run under autocast: the architecture step and the latency term
  stay in fp32 (alpha's gradient is the small difference of two expected
  costs, which bf16's 8-bit mantissa would drown).
* The same code runs on every device: the CPU tests run the paths a GPU
  runs (``.to(device)``, ``torch.autocast(device_type=...)``), and the one
  place that differs, the fp16 gradient scaler, is a no-op object otherwise.

Asking for CUDA where there is none is a :class:`~ednas.errors.ConfigError`
raised while the settings are checked, before any work.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass

import torch

from ednas.errors import ConfigError

__all__ = ["AMP_KINDS", "DeviceConfig", "Hardware", "resolve_hardware", "local_world", "auto_workers", "default_threads"]

AMP_KINDS = ("auto", "off", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|cuda)(:\d+)?$")


def local_world() -> tuple[int, int]:
    """``(local rank, processes on this node)`` from torchrun's environment, ``(0, 1)`` outside it."""
    return int(os.environ.get("LOCAL_RANK", "0")), max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Intra-op threads of one process: this machine's cores shared by the processes on this node."""
    return max(1, _cores() // local_world()[1])


def auto_workers() -> int:
    """DataLoader worker processes of one process: its share of the cores, one left to the training loop, at most 8."""
    return max(0, min(8, _cores() // local_world()[1] - 1))


@dataclass
class DeviceConfig:
    """Device and mixed precision."""

    #: where weights, alpha, Gumbel noise, latency tensors and data live: auto (CUDA if present), cpu, cuda, cuda:N (under torchrun cuda is cuda:LOCAL_RANK)
    device: str = "auto"
    #: mixed precision of forward passes: auto (bf16 on CUDA, off on CPU), off, bf16, fp16 (CUDA only, with a gradient scaler); the architecture step stays fp32
    amp: str = "auto"

    def check(self, name) -> None:
        m = _DEVICE.match(self.device)
        if not m or (m.group(1) != "cuda" and m.group(2)):
            raise ConfigError(f"{name('device')} '{self.device}' is unknown; expected auto, cpu, cuda or cuda:N")
        if self.amp not in AMP_KINDS:
            raise ConfigError(f"{name('amp')} '{self.amp}' is unknown; expected one of {', '.join(AMP_KINDS)}")
        if m.group(1) == "cuda":
            if not torch.cuda.is_available():
                raise ConfigError(f"{name('device')} {self.device}: no CUDA device is available here "
                                  f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use {name('device')} cpu or auto")
            n = torch.cuda.device_count()
            if m.group(2) and int(m.group(2)[1:]) >= n:
                raise ConfigError(f"{name('device')} {self.device}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
            if m.group(2) and local_world()[1] > 1:
                raise ConfigError(f"{name('device')} {self.device} with {local_world()[1]} processes on this node would put them all "
                                  f"on one GPU; use {name('device')} cuda (each process takes cuda:LOCAL_RANK)")
        on_cuda = m.group(1) == "cuda" or (m.group(1) == "auto" and torch.cuda.is_available())
        if self.amp == "fp16" and not on_cuda:
            raise ConfigError(f"{name('amp')} fp16 needs a CUDA device (fp16 training needs a gradient scaler); use {name('amp')} bf16 on the CPU")
        if self.amp == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"{name('amp')} bf16: this GPU does not support bfloat16; use {name('amp')} fp16")


@dataclass(frozen=True)
class Hardware:
    """A resolved device and autocast dtype (``amp`` is ``off``, ``bf16`` or ``fp16``)."""

    device: torch.device
    amp: str = "off"

    @classmethod
    def cpu(cls) -> Hardware:
        return cls(torch.device("cpu"), "off")

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def autocast(self):
        """The autocast context of forward passes (a no-op with ``amp`` off)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self):
        """A gradient scaler for fp16 (CUDA); for bf16 and fp32 one that is disabled (its calls pass through)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.is_cuda else "CPU"
        return f"{self.device} ({name}), amp {self.amp}"


def resolve_hardware(cfg: DeviceConfig | None = None) -> Hardware:
    """The device and autocast dtype ``cfg`` asks for on this machine (and, under torchrun, this process).

    Also turns on what makes CUDA fast where it is free to (cuDNN autotuning,
    TF32 matrix products in fp32 layers).
    """
    cfg = cfg or DeviceConfig()
    cfg.check(lambda f: f"--{f}")
    kind, _, index = cfg.device.partition(":")
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        device = torch.device("cuda", int(index) if index else local_world()[0] % torch.cuda.device_count())
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    amp = cfg.amp
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if kind == "cuda" else "off"
    return Hardware(device, amp)
