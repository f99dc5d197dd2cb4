"""The run context: what one process builds once and every stage takes.

A command resolves its settings, then builds one :class:`RunContext`:

* every check that needs no measurement runs first, in the constructor:
  the output folder can be written, the data spec loads (the data set is
  loaded here, once, with its split seed), the space parses and has choices,
  and, where the latency table can be had without measuring (a table file,
  a board file, an analytic profile, or a complete cached host table), the
  table covers the space and the budget lies in the range the space can
  reach on it.  Conflicting or out-of-range flags were refused earlier, when
  the settings were resolved (:mod:`ednas.config`);
* then the stages take its objects: :attr:`data`, :attr:`space`,
  :meth:`latency_model` (measured at most once, and cached across runs),
  :meth:`budget` (:meth:`ednas.latency.LatencyModel.budget`, the one place
  budgets are resolved), :attr:`timing` (how every end-to-end latency of the
  run is taken: the table's threads unless set) and :attr:`seed`
  (:mod:`ednas.seeds`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from pathlib import Path

from ednas.arch.spec import ArchSpec, load_space
from ednas.data import DataConfig, DataSet, load_data
from ednas.errors import ConfigError
from ednas.io import check_writable_dir
from ednas.latency.build import MEASURED_TARGETS, cached_table, target_table
from ednas.latency.config import LatencyConfig
from ednas.latency.model import Budget, LatencyModel
from ednas.latency.remote import is_remote
from ednas.latency.table import LatencyTable
from ednas.runtime import Timing

__all__ = ["RunContext", "check_out_dir"]

log = logging.getLogger(__name__)


def check_out_dir(path, flag: str = "--out") -> Path:
    """Create the output folder if needed and make sure it can be written; a clear error otherwise."""
    return check_writable_dir(path, flag)


class RunContext:
    """Data, space, latency model, budget, timing and seed of one run (see the module docstring).

    Args:
        data: the data settings (the set is loaded here, once).
        space: the search space reference (``None``: by input size); not
            needed by commands that search nothing.
        latency: the latency settings (target, budget, cache), if the
            command uses latency.
        timing: how end-to-end latencies are taken; ``timing_threads_given``
            says whether its thread count was set by the user (else the
            table's is used, so every latency of a run is taken alike).
        seed: the run's seed.
        progress: progress bars (``None``: only on a terminal).
        out: the output folder, checked (and created) first.
        table_dtype, table_quant: the precision of the latency table and
            its fixed-point options
            (:func:`ednas.latency.config.table_precision`; ``None``: the
            target's own).
    """

    def __init__(self, *, data: DataConfig, space: str | None = None, latency: LatencyConfig | None = None,
                 timing: Timing | None = None, timing_threads_given: bool = False, seed: int = 0,
                 progress: bool | None = None, out=None, needs_space: bool = False, table_dtype: str | None = None,
                 table_quant: dict | None = None):
        self.seed, self.progress = seed, progress
        self._started = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)  # tables record their creation to the second
        self.latency_cfg = latency
        self.table_dtype, self.table_quant = table_dtype, table_quant
        self._timing, self._threads_given = timing or Timing(), timing_threads_given
        self.out = check_out_dir(out) if out is not None else None
        self.data: DataSet = load_data(data)
        self.data.workers = data.workers
        self.space: ArchSpec | None = load_space(space, self.data.input_size) if (needs_space or space or latency) else None
        #: the space as given; :attr:`space` is it scaled by :attr:`width_mult` when a budget needs it
        self.base_space, self.width_mult = self.space, 1.0
        self._fitted = False
        self._table: LatencyTable | None = None
        self._model: LatencyModel | None = None
        if latency is not None:
            self._table = self._table_without_measuring()
            if self._table is not None:
                self.budget()  # a table at hand: the budget must be reachable, before any training

    # -- latency -------------------------------------------------------------
    def _table_without_measuring(self) -> LatencyTable | None:
        lc, d = self.latency_cfg, self.data
        if lc.target in MEASURED_TARGETS or is_remote(lc.target):
            return cached_table(lc.target, self.space, d.input_size, d.num_classes, lc.cache, self.table_dtype, self.table_quant)
        return target_table(lc.target, self.space, d.input_size, d.num_classes, lc.cache, self.progress, self.table_dtype, self.table_quant,
                            remote_token_file=lc.remote_token_file)

    @property
    def table(self) -> LatencyTable:
        """The latency table of the space on the target (measured here, once, if it must be)."""
        if self._table is None:
            lc, d = self.latency_cfg, self.data
            if lc is None:
                raise ConfigError("this command has no latency target")
            self._table = target_table(lc.target, self.space, d.input_size, d.num_classes, lc.cache, self.progress, self.table_dtype,
                                       self.table_quant, remote_token_file=lc.remote_token_file)
        return self._table

    def table_is_new(self) -> bool:
        """Whether the latency table was created after this context was (measured by this process, moments ago)."""
        created = self.table.meta.get("created")
        try:
            return isinstance(created, str) and _dt.datetime.fromisoformat(created) >= self._started
        except ValueError:
            return False

    def use_table(self, table: LatencyTable) -> None:
        """Use ``table`` (e.g. the copy a run keeps in its ``lut/`` folder) from now on."""
        self._table, self._model = table, None

    def latency_model(self) -> LatencyModel:
        if self._model is None:
            self._model = LatencyModel(self.space, self.data.input_size, self.data.num_classes, self.table)
        if not self._fitted and self.latency_cfg is not None and self.latency_cfg.budget_ms is not None:
            self._fitted = True
            self._fit_width(self.latency_cfg.budget_ms)
        return self._model

    def fit_space(self) -> None:
        """With a ``--budget-ms``: scale the space now if the budget needs it (measures the table if it must); no-op otherwise."""
        if self.latency_cfg is not None and self.latency_cfg.budget_ms is not None and self.space is not None:
            self.latency_model()

    def _fit_width(self, budget_ms: float) -> None:
        """Scale the space's widths until ``budget_ms`` lies well inside its range (:mod:`ednas.latency.fit`)."""
        from ednas.latency.fit import fit_width_mult, needs_fit

        model, lc, d = self._model, self.latency_cfg, self.data
        if not needs_fit(budget_ms, model.min_ms, model.max_ms, lc.recentre):
            return
        if lc.target.startswith("file:") or lc.target.endswith(".json"):
            # a table file prices the operators it holds: it cannot price a scaled skeleton, so the range is the answer
            if model.min_ms <= budget_ms <= model.max_ms:
                return  # inside it, only re-centring was asked for
            model.budget(ms=budget_ms)  # raises: outside the achievable range, naming it

        def table_of(space):
            return target_table(lc.target, space, d.input_size, d.num_classes, lc.cache, self.progress, self.table_dtype, self.table_quant,
                                remote_token_file=lc.remote_token_file)

        def model_of(space):
            return LatencyModel(space, d.input_size, d.num_classes, table_of(space))

        where = "near the top of" if model.min_ms <= budget_ms <= model.max_ms else "outside"
        mult, space, model = fit_width_mult(self.base_space, budget_ms, model, model_of, self._range_estimate(),
                                            target=lc.target)
        self.width_mult, self.space, self._model, self._table = mult, space, model, model.table
        log.info("budget %.4g ms is %s the space's range on %s: widths scaled by %g (range now [%.4g, %.4g] ms)", budget_ms, where,
                 lc.target, mult, model.min_ms, model.max_ms)

    def _range_estimate(self):
        """For a measured table: the scaled space's smallest and largest networks timed end to end as the table prices them
        (its precision, its reference speed), so a multiplier is chosen before a table is measured for it; ``None`` elsewhere."""
        if self.latency_cfg.target not in MEASURED_TARGETS:
            return None
        from ednas.latency.measure import measure_latency
        from ednas.nn import build_model

        ref, timing, d = self._table, self.timing, self.data

        def estimate(space):
            return tuple(measure_latency(build_model(a, d.num_classes).eval(), d.input_size, timing=timing, table=ref)
                         for a in (space.smallest(), space.largest()))

        return estimate

    def budget(self) -> Budget:
        lc = self.latency_cfg
        model = self.latency_model()
        b = model.budget(ms=lc.budget_ms, frac=None if lc.budget_ms is not None else lc.budget_frac)
        return dataclasses.replace(b, width_mult=self.width_mult)

    @property
    def timing(self) -> Timing:
        """The run's timing settings; threads follow the table unless the user set them."""
        if not self._threads_given and self.latency_cfg is not None:
            return dataclasses.replace(self._timing, threads=self.table.threads)
        return self._timing
