"""Architecture specs: the grammar, presets and validation (see :mod:`ednas.arch.spec`)."""

from ednas.arch.spec import (
    PRESETS,
    ArchSpec,
    BlockSpec,
    ConvStemSpec,
    HeadSpec,
    Layer,
    StemSpec,
    format_arch,
    load_arch,
    load_space,
    parse_arch,
    preset,
)

__all__ = ["PRESETS", "ArchSpec", "BlockSpec", "ConvStemSpec", "HeadSpec", "Layer", "StemSpec", "format_arch", "load_arch", "load_space", "parse_arch", "preset"]
