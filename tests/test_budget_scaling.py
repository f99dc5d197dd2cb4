"""Any budget reachable: a --budget-ms outside the space's range scales its widths (ednas.arch.scale, ednas.latency.fit)."""

import json
import subprocess
import sys

import pytest

from ednas.arch.scale import WIDTH_MULTS, make_divisible, scale_space
from ednas.arch.spec import parse_arch
from ednas.errors import ConfigError
from ednas.latency.fit import fit_width_mult

SPACE = "stem_k11_m1_c16_s2 | ir_k3_e1_c16 | ir_k3.5_e2.4_c16.32_s2_r2_d1.2 | ir_k3.5_e2.4_c32.56_s2_r2_d1.2 | head_c64"


def test_make_divisible_follows_mobilenets_rule():
    assert [make_divisible(v) for v in (4, 12, 13.9, 20, 27.9, 100)] == [8, 16, 16, 24, 32, 104]
    assert make_divisible(11) == 16  # 8 would be more than 10 % below 11


def test_scale_space_multiplies_every_width_and_nothing_else():
    sp = parse_arch(SPACE)
    half = scale_space(sp, 0.5)
    assert half.format() == "stem_k11_m1_c8_s2 | ir_k3_e1_c8 | ir_k3.5_e2.4_c8.16_s2_r2_d1.2 | ir_k3.5_e2.4_c16.32_s2_r2_d1.2 | head_c64"
    assert scale_space(sp, 1.0) is sp
    quarter = scale_space(sp, 0.25)  # 16 and 32 both round to 8: the second stage's width becomes fixed
    assert quarter.stages[1][0].widths == () and quarter.stages[1][0].out == 8
    double = scale_space(sp, 2.0)
    assert [b.width_options for st in double.stages for b in st] == [(32,), (32, 64), (64, 112)]


class _Fake:
    """A latency model of a space, from its widths: [0.002 x (sum of its smallest widths), 0.01 x (sum of its largest)] ms."""

    def __init__(self, space):
        small = space.stem.out + sum(min(b.width_options) for st in space.stages for b in st)
        large = space.stem.out + sum(max(b.width_options) for st in space.stages for b in st)
        self.min_ms, self.max_ms, self.table = 0.002 * small, 0.01 * large, None


def _expected(base, budget, up):
    """The multiplier a brute force over the ladder picks: the budget nearest the middle of a range that holds it."""
    best = None
    for m in (m for m in WIDTH_MULTS if (m > 1) == up and m != 1):
        f = _Fake(scale_space(base, m))
        if f.min_ms <= budget <= f.max_ms:
            off = abs((budget - f.min_ms) / (f.max_ms - f.min_ms) - 0.5)
            if best is None or off < best[0]:
                best = (off, m)
    return best[1]


@pytest.mark.parametrize("budget, up", [(1.6, True), (2.5, True), (0.14, False), (0.1, False)])
def test_fit_chooses_the_multiplier_that_puts_the_budget_nearest_the_middle(budget, up):
    base = parse_arch(SPACE)
    f1 = _Fake(base)  # [0.16, 1.2] ms at width 1
    assert (budget > f1.max_ms) == up and (budget < f1.min_ms) == (not up)
    tried = []

    def model_of(space):
        tried.append(space)
        return _Fake(space)

    mult, space, model = fit_width_mult(base, budget, f1, model_of)
    assert model.min_ms <= budget <= model.max_ms and space == scale_space(base, mult)
    assert mult == _expected(base, budget, up) or _Fake(scale_space(base, mult)).min_ms == _Fake(scale_space(base, _expected(base, budget, up))).min_ms
    widths = [_Fake(sp).max_ms for sp in tried]
    assert widths == sorted(widths, reverse=not up)  # walked from 1 towards the budget, one way


def test_an_unreachable_budget_names_the_reachable_range():
    base = parse_arch(SPACE)
    with pytest.raises(ConfigError, match=r"outside what the space reaches at any width multiplier in \[0.25, 3\]: \[0.064, 3.6\] ms"):
        fit_width_mult(base, 0.01, _Fake(base), _Fake)


def _search(tmp_path, *args):
    cmd = [sys.executable, "-m", "ednas.cli", "search", "--data", "digits", "--target", "roofline", "--space", SPACE, "--out", str(tmp_path / "s"),
           "--no-progress", "--no-tensorboard", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def test_an_unreachable_budget_is_one_line_exit_2_before_any_work(tmp_path):
    r = _search(tmp_path, "--budget-ms", "0.05", "--epochs", "2", "--warmup-epochs", "1")
    assert r.returncode == 2
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert "--budget-ms 0.05 is outside what the space reaches at any width multiplier in [0.25, 3]" in lines[0]
    assert "on target roofline" in lines[0]
    assert not (tmp_path / "s" / "search.json").exists() and not (tmp_path / "s" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_a_budget_below_the_range_is_reached_by_scaling_on_the_searchs_own_argmax(tmp_path):
    budget = 0.30  # below the space's range on roofline ([0.333, 1.198] ms at width 1)
    r = _search(tmp_path, "--budget-ms", str(budget), "--fit", "none", "--epochs", "6", "--warmup-epochs", "1", "--batch-size", "32")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "s" / "search.json").read_text())
    assert s["width_mult"] < 1.0
    assert s["min_ms"] <= budget <= s["max_ms"]
    assert s["n_fit_changes"] == 0  # --fit none: the argmax as the search left it
    assert 0.9 * budget <= s["argmax_latency_ms"] <= budget


# -- re-centring a budget inside the range (--latency.recentre) ---------------------------------------------------------

def test_needs_fit_is_outside_the_range_or_within_recentre_of_its_top():
    from ednas.latency.fit import needs_fit

    assert needs_fit(0.5, 1.0, 2.0) and needs_fit(2.5, 1.0, 2.0)  # outside, whatever recentre
    assert not needs_fit(1.9, 1.0, 2.0)  # inside, recentre 0: never
    assert needs_fit(1.9, 1.0, 2.0, recentre=0.25) and needs_fit(1.76, 1.0, 2.0, recentre=0.25)  # positions 0.9 and 0.76
    assert not needs_fit(1.5, 1.0, 2.0, recentre=0.25) and not needs_fit(1.74, 1.0, 2.0, recentre=0.25)
    assert not needs_fit(1.1, 1.0, 2.0, recentre=0.25) and not needs_fit(1.01, 1.0, 2.0, recentre=0.25)  # the bottom: never


def _off(f, budget):
    return abs((budget - f.min_ms) / (f.max_ms - f.min_ms) - 0.5)


@pytest.mark.parametrize("pos", [0.85, 0.95, 0.05, 0.15])
def test_a_budget_near_an_end_of_the_range_is_recentred_by_the_multiplier_that_centres_it_best(pos):
    base = parse_arch(SPACE)
    f1 = _Fake(base)
    budget = f1.min_ms + pos * (f1.max_ms - f1.min_ms)
    mult, space, model = fit_width_mult(base, budget, f1, _Fake)
    assert (mult > 1) == (pos > 0.5) and mult != 1.0  # near the top: wider; near the bottom: narrower
    assert model.min_ms <= budget <= model.max_ms and space == scale_space(base, mult)
    # no multiplier of the ladder (1 included) puts the budget nearer the middle of its range
    holding = [_Fake(scale_space(base, m)) for m in WIDTH_MULTS]
    best = min(_off(f, budget) for f in holding if f.min_ms <= budget <= f.max_ms)
    assert _off(model, budget) == pytest.approx(best) and _off(model, budget) < _off(f1, budget)


def test_a_budget_already_nearest_the_middle_at_width_1_keeps_width_1():
    base = parse_arch(SPACE)
    f1 = _Fake(base)
    budget = f1.min_ms + 0.55 * (f1.max_ms - f1.min_ms)
    mult, space, model = fit_width_mult(base, budget, f1, _Fake)
    assert mult == 1.0 and space is base and model is f1


def test_recentre_outside_zero_to_a_half_is_refused_naming_the_field():
    from ednas.latency.config import LatencyConfig

    with pytest.raises(ConfigError, match=r"--recentre 0.5 must be in \[0, 0.5\)"):
        LatencyConfig(recentre=0.5).check(lambda f: "--" + f.replace("_", "-"))


@pytest.mark.parametrize("recentre, pos, wider", [(0.0, 0.9, False), (0.25, 0.9, True), (0.25, 0.1, False)])
def test_the_run_context_recentres_a_budget_near_the_top_only_when_asked(recentre, pos, wider):
    from ednas.context import RunContext
    from ednas.data import DataConfig
    from ednas.latency.config import LatencyConfig

    def ctx(budget_ms=None):
        return RunContext(data=DataConfig(spec="digits"), space=SPACE, progress=False,
                          latency=LatencyConfig(target="roofline", budget_ms=budget_ms, recentre=recentre))

    m1 = ctx().latency_model()
    budget = m1.min_ms + pos * (m1.max_ms - m1.min_ms)
    c = ctx(budget)
    b = c.budget()
    assert (c.width_mult > 1.0) == wider and b.width_mult == c.width_mult
    assert c.latency_model().min_ms <= budget <= c.latency_model().max_ms
    assert c.space == scale_space(parse_arch(SPACE), c.width_mult)


@pytest.mark.parametrize("pos, wider", [(0.9, True), (0.8, True), (0.7, False), (0.1, False)])
def test_by_default_a_budget_in_the_top_quarter_of_the_range_is_recentred_and_one_below_it_is_not(pos, wider):
    from ednas.context import RunContext
    from ednas.data import DataConfig
    from ednas.latency.config import LatencyConfig

    def ctx(budget_ms=None):
        return RunContext(data=DataConfig(spec="digits"), space=SPACE, progress=False,
                          latency=LatencyConfig(target="roofline", budget_ms=budget_ms))  # every latency setting at its default

    m1 = ctx().latency_model()
    c = ctx(m1.min_ms + pos * (m1.max_ms - m1.min_ms))
    c.budget()
    assert (c.width_mult > 1.0) == wider


@pytest.mark.parametrize("name", ["paper_imagenet", "paper_voc"])
def test_the_paper_configs_keep_the_skeleton_for_a_budget_inside_its_range(name):
    from ednas.config import resolve_config
    from ednas.latency.fit import needs_fit
    from ednas.pipeline import RunConfig

    cfg = resolve_config(RunConfig, {"out": "x", "config": name})
    assert not needs_fit(1.99, 1.0, 2.0, cfg.latency.recentre)  # Algorithm 1 searches the paper's skeleton as given
