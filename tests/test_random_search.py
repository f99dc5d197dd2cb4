"""Random search: draws in the band, compute shared out, the best by validation, resume."""

import pytest

from ednas.arch.spec import load_arch, parse_arch
from ednas.data import load_data
from ednas.errors import EdnasError
from ednas.search import RandomSearchConfig, random_search, sample_in_band
from ednas.train.trainer import TrainConfig
from tests.conftest import TINY_SPACE
from tests.search_helpers import SYNTH, SyntheticLatency


def test_draws_are_distinct_in_the_band_and_follow_the_seed():
    space = parse_arch(TINY_SPACE)
    lat = SyntheticLatency(space)
    b = lat.budget(frac=0.5).ms
    drawn = sample_in_band(space, lat, b, 6, low=0.9, seed=3)
    assert len(drawn) == 6 and len({repr(p) for p, _ in drawn}) == 6
    for picks, ms in drawn:
        assert 0.9 * b <= ms <= b and ms == pytest.approx(lat.predict(picks))
        space.with_picks(picks)  # every draw is a valid network of the space
    assert sample_in_band(space, lat, b, 6, low=0.9, seed=3) == drawn
    assert sample_in_band(space, lat, b, 6, low=0.9, seed=4) != drawn


def test_masked_kernels_are_never_drawn_and_an_empty_band_falls_back_under_the_budget():
    space = parse_arch(TINY_SPACE)
    lat = SyntheticLatency(space, masked={i: {3} for i in range(4)})
    b = lat.budget(frac=0.3).ms
    for picks, _ in sample_in_band(space, lat, b, 5, low=0.0, seed=0):
        assert all(p["kernel"] != 3 or p["skip"] for p in picks)
    # a band no draw reaches: the draws closest under the budget instead, never over it
    drawn = sample_in_band(space, lat, b, 3, low=0.99999, seed=0, max_draws=200)
    assert len(drawn) == 3 and all(ms <= b for _, ms in drawn)
    with pytest.raises(EdnasError, match="within the budget"):
        sample_in_band(space, lat, lat.min_ms * 0.5, 2, seed=0, max_draws=50)


def test_random_search_shares_the_compute_and_keeps_the_best_by_validation(tmp_path, monkeypatch):
    import ednas.search.random as rs

    space = parse_arch(TINY_SPACE)
    lat = SyntheticLatency(space)
    data = load_data(SYNTH)
    n_train = len(data.labels("train"))
    trained = []
    real_train = rs.train

    def train(cfg, out, *, arch, data, seed, **kw):
        trained.append((arch, cfg.epochs))
        return real_train(cfg, out, arch=arch, data=data, seed=seed, **kw)

    monkeypatch.setattr(rs, "train", train)
    budget = lat.budget(frac=0.5)
    r = random_search(RandomSearchConfig(samples=3), tmp_path, data=data, latency=lat, budget=budget, space=space,
                      recipe=TrainConfig(epochs=99, batch_size=16), compute_images=2 * 3 * n_train, seed=0)
    assert [e for _, e in trained] == [2, 2, 2] and r["epochs_each"] == 2  # 2 epochs each of the 6 the compute buys
    assert r["compute_images"] == 6 * n_train
    vals = [c["val_top1"] for c in r["candidates"]]
    assert r["candidates"][r["best"]]["val_top1"] == max(vals) and r["arch"] == r["candidates"][r["best"]]["arch"]
    assert all(0.9 * budget.ms <= c["predicted_latency_ms"] <= budget.ms for c in r["candidates"])
    spec, size = load_arch(str(tmp_path / "arch.yaml"))  # ednas train --arch reads it
    assert spec.format() == r["arch"] and size == data.input_size
    # a second call finds every network trained
    trained.clear()
    again = random_search(RandomSearchConfig(samples=3), tmp_path, data=data, latency=lat, budget=budget, space=space,
                          recipe=TrainConfig(epochs=99, batch_size=16), compute_images=2 * 3 * n_train, seed=0)
    assert trained == [] and again["arch"] == r["arch"]


def test_random_search_needs_a_compute_budget_or_epochs(tmp_path):
    space = parse_arch(TINY_SPACE)
    lat = SyntheticLatency(space)
    with pytest.raises(EdnasError, match="compute"):
        random_search(RandomSearchConfig(), tmp_path, data=load_data(SYNTH), latency=lat, budget=lat.budget(frac=0.5), space=space,
                      recipe=TrainConfig())
