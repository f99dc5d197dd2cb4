"""The search's per-epoch score of its argmax network, taken on a derived copy of it.

Each epoch the search scores its argmax network on the validation split with
BN statistics recomputed for that network.  It does so on the fixed network
built from the supernet's weights (``_Search.argmax_network``), which costs
what the network costs, rather than on the supernet pinned at its argmax,
which runs every layer at its widest.  The claim tested here is that the two
are the same score: for every supernet kind, with skipped blocks, dropped
repeats, narrowed widths, tied pairs and projection skips, with and without
the recalibration; that scoring leaves the supernet as it was (its BN
statistics, its alphas); and that building the copy draws nothing from the
search's random generator.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from ednas.arch.spec import parse_arch
from ednas.data import load_data
from ednas.latency.model import LatencyModel
from ednas.latency.ops import space_ops
from ednas.latency.table import LatencyTable
from ednas.nn import recalibrated_bn
from ednas.train.metrics import evaluate
from tests.conftest import randomize_bn
from tests.search_helpers import make_search, run_search

# depth (dropped repeats), searched widths, expansions and kernels
ELASTIC = "stem_k11_m1_c8_s1 | ir_k3.5_e1_c8 | ir_k3.5_e2.4_c8.16_s2_r3_d1.2.3 | ir_k3.5_e2.4_c16.24_s2_r2_d1.2 | head_c32"
# a plain convolution stem, tied kernel/expansion pairs and skips (projection skips where the block changes shape)
LITERATURE = "conv_k3_c8_s1 | ir_k3.5_e3.6_c16_s2_tied_skip | ir_k3.5_e2.4_c16_skip | ir_k3_e2_c24.32_s2_skip | head_c32"
# per space: the candidate each named choice is pinned to (every other choice: its first candidate)
PINS = {
    ELASTIC: {"L1.kernel": 5, "L1.width": 8, "L1.depth": 2, "L4.width": 16, "L4.depth": 1},
    LITERATURE: {"L0.skip": "block", "L1.skip": "skip", "L2.skip": "skip", "L2.width": 24},
}


def _latency(space: str, classes: int) -> LatencyModel:
    sp = parse_arch(space)
    entries = {op.key: 0.001 + op.macs * 1e-6 for op in space_ops(sp, 32, classes)}
    return LatencyModel(sp, 32, classes, LatencyTable(target="synthetic", input_size=32, entries=entries))


def _pin(net, pins: dict) -> None:
    with torch.no_grad():
        for name, c in net.named_choices():
            want = pins.get(name)
            i = [str(v) for v in c.candidates].index(str(want)) if want is not None else 0
            c.alpha.copy_(F.one_hot(torch.tensor(i), len(c.candidates)).float() * 3.0)


def _bn_state(net) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


@pytest.mark.parametrize("space", [ELASTIC, LITERATURE], ids=["elastic", "literature"])
@pytest.mark.parametrize("kind", ["metakernel", "darts", "fbnet"])
@pytest.mark.parametrize("bn_images", [200, 0], ids=["recalibrated", "supernet-statistics"])
def test_the_epoch_score_of_the_derived_copy_is_the_pinned_supernets_score(tmp_path, space, kind, bn_images):
    data = load_data("digits")
    s = make_search(tmp_path, _latency(space, data.num_classes), data=data, space=space, supernet=kind, bn_images=bn_images, paths=1)
    net = s.paths[0]
    randomize_bn(net, seed=1)  # statistics that differ from any recomputed ones: a copy that kept the wrong ones scores differently
    _pin(net, PINS[space])
    picks = net.picks()
    if space == ELASTIC:
        assert any(p["skip"] for p in picks) and any(p.get("width") not in (None, l.spec.out) for p, l in zip(picks, net.layers))
    else:
        assert any(p["skip"] and l.skip_proj for p, l in zip(picks, net.layers))  # a projection skip is kept as a block
    alphas = [c.alpha.detach().clone() for c in net.choices()]
    bn_before = _bn_state(net)

    rec = s._epoch_eval(0, {"tau": 1.0}, None)

    assert all(torch.equal(a, c.alpha) for a, c in zip(alphas, net.choices()))
    after = _bn_state(net)
    assert all(torch.equal(bn_before[k], after[k]) for k in bn_before)
    assert all(c.fixed is None for c in net.choices())
    assert net.picks() == picks

    # the reference: the supernet itself pinned at its argmax, scored as every earlier version did
    for c in net.choices():
        c.g = None
        c.fixed = c.argmax()
    try:
        ctx = recalibrated_bn(net, s.bn_loader) if bn_images else contextlib.nullcontext()
        with ctx:
            net.eval()
            ref = evaluate(net, s.val_loader, data.multilabel, data.classes)
    finally:
        for c in net.choices():
            c.fixed = None
    assert rec["val_loss"] == pytest.approx(ref["loss"], abs=1e-5, rel=1e-5)
    assert rec["val_top1"] == pytest.approx(ref["top1"], abs=1e-9)
    assert rec["argmax_lat_ms"] == pytest.approx(s.latency.predict(picks))


def test_the_derived_copy_is_the_argmax_network_without_the_dropped_layers(tmp_path):
    data = load_data("digits")
    s = make_search(tmp_path, _latency(ELASTIC, data.num_classes), data=data, space=ELASTIC, paths=1)
    _pin(s.paths[0], PINS[ELASTIC])
    rng = torch.get_rng_state()
    model = s.argmax_network()
    assert torch.equal(torch.get_rng_state(), rng)  # building it draws nothing from the search's generator
    assert model.arch.format() == "stem_k11_m1_c8_s1 | ir_k3_e1_c8 | ir_k5_e2_c8_s2 ir_k3_e2_c8 | ir_k3_e2_c16_s2 | head_c32"
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in s.paths[0].weight_parameters()) / 2


def test_the_epoch_score_never_runs_the_supernet(tmp_path):
    """What makes it cheap: every image of the recalibration and the score goes through the derived network only."""
    data = load_data("digits")
    s = make_search(tmp_path, _latency(ELASTIC, data.num_classes), data=data, space=ELASTIC, paths=1, bn_images=100)
    _pin(s.paths[0], PINS[ELASTIC])
    calls = []
    hook = s.paths[0].register_forward_hook(lambda *a: calls.append(1))
    built = []
    real = s.argmax_network
    s.argmax_network = lambda picks=None: built.append(real(picks)) or built[-1]
    try:
        rec = s._epoch_eval(0, {"tau": 1.0}, None)
    finally:
        hook.remove()
    assert calls == []
    assert len(built) == 1 and built[0].arch.format() == s.space.with_picks(s.paths[0].picks(), branches=False).format()
    assert rec["bn_images"] == 100 and rec["val_loss"] == rec["val_loss"]


def test_the_number_of_bn_images_changes_no_step_of_the_search(tmp_path):
    """The score's BN pass, on any number of images or none, leaves every step of the search as it was: the same weights,
    BN statistics, alphas, lambda and architecture; only the curve differs.  What lets its default count be chosen for the
    curve alone (benchmarks/bn_images.py)."""
    data = load_data("synthetic:classes=4,n=64,size=32")
    runs = {n: run_search(tmp_path / str(n), _latency(ELASTIC, data.num_classes), data=data, space=ELASTIC, epochs=2, arch_warmup_epochs=1,
                          update="joint", bn_images=n)
            for n in (0, 40)}
    states = {n: torch.load(tmp_path / str(n) / "supernet.pt", weights_only=True)["state_dict"] for n in runs}
    for n in (40,):
        assert runs[n]["arch"] == runs[0]["arch"] and runs[n]["lambda"] == runs[0]["lambda"]
        assert [(h["argmax_lat_ms"], h["E_lat_ms"], h["lam"]) for h in runs[n]["history"]] == \
            [(h["argmax_lat_ms"], h["E_lat_ms"], h["lam"]) for h in runs[0]["history"]]
        for k, v in states[0].items():
            assert torch.equal(v, states[n][k]), k
        assert [h["bn_images"] for h in runs[n]["history"]] == [n] * 2
    assert [h["val_loss"] for h in runs[40]["history"]] != [h["val_loss"] for h in runs[0]["history"]]  # the curve is what differs
