"""The ``uniform`` baseline: the search space's own network without NAS, width-matched to the budget (the default)."""

import pytest

from ednas.arch.scale import UNIFORM_KERNEL, make_divisible, scale_space, uniform_arch
from ednas.arch.spec import parse_arch, preset
from ednas.errors import EdnasError


def _blocks(arch):
    return [b for stage in arch.stages for b in stage]


@pytest.mark.parametrize("name", ["cifar", "cifar-kernels"])
def test_uniform_is_the_spaces_largest_network_with_one_3x3_kernel(name):
    space = preset(name)
    u = uniform_arch(space)
    assert u.is_fixed
    assert len(u.stages) == len(space.stages)
    for b, searched in zip(_blocks(u), _blocks(space)):
        assert b.kernels == (UNIFORM_KERNEL,)
        assert b.expansions == (max(searched.expansions),)  # the largest expansion
        assert b.out == max(searched.width_options) and b.widths == ()  # the widest width
        assert b.repeats == max(searched.depths or (searched.repeats,)) and b.depths == () and not b.skip  # full depth
    assert parse_arch(u.format()) == u


def test_uniform_baseline_is_built_from_the_runs_space_at_the_matched_width():
    from ednas.nn.build import build_model
    from ednas.report.baselines import build_baseline

    space = preset("cifar")
    model, info = build_baseline("uniform@match", 10, 32, 0.5, space=space)
    scaled = scale_space(uniform_arch(space), 0.5)
    assert info["arch"] == scaled.format() and info["width"] == 0.5 and info["source"] == "ednas"
    assert info["strides_removed_at"] == [] and info["final_map"] == 4  # the space's own resolution schedule, nothing re-strided
    for b, ref in zip(_blocks(scaled), _blocks(uniform_arch(space))):  # widths halved, rounded to multiples of 8
        assert b.out == make_divisible(ref.out * 0.5) < ref.out
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in build_model(scaled, 10).parameters())
    full = build_baseline("uniform", 10, 32, space=space)[1]
    assert full["width"] == 1.0 and full["arch"] == uniform_arch(space).format()  # no width: the space's own widths
    with pytest.raises(EdnasError, match="needs the run's space"):
        build_baseline("uniform@0.5", 10, 32)


def test_uniform_match_takes_the_widest_ladder_width_within_the_budget(tmp_path, monkeypatch):
    """Priced by a spy proportional to the network's weights: the run's space reaches the match and the trained network."""
    from ednas.data import load_data
    from ednas.report import baselines
    from ednas.train.trainer import TrainConfig

    space = preset("cifar")
    data = load_data("synthetic:classes=3,n=48,size=32")

    def weights(model):
        return sum(p.numel() for p in model.parameters() if p.dim() >= 2)

    def ms(w):
        return weights(baselines.build_baseline("uniform", 3, 32, w, space=space)[0]) / 1e6

    priced = []

    def measure(self, model, input_size):
        priced.append(weights(model))
        return {"ms": weights(model) / 1e6}

    monkeypatch.setattr(baselines.Pricing, "measure", measure)
    budget = (ms(0.5) + ms(0.55)) / 2
    assert ms(0.5) < budget < ms(0.55)  # two ladder widths whose rounded networks differ
    (r,) = baselines.run_baselines(data, tmp_path, ["uniform@match"], TrainConfig(epochs=1, batch_size=16), target="host-ort",
                                   budget_ms=budget, progress=False, space=space)
    assert r["width"] == 0.5 and r["width_matched"] and r["latency_ms"] == ms(0.5) <= budget
    assert r["arch"] == scale_space(uniform_arch(space), 0.5).format() and r["params"] >= weights(
        baselines.build_baseline("uniform", 3, 32, 0.5, space=space)[0])
    assert 0.55 in dict(r["width_probes"])  # the next width was probed and is over
    assert len(priced) == len(r["width_probes"])  # matched once; nothing timed after training
