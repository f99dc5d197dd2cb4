"""Benchmark: ednas's CPU weight gradient for depthwise convolutions against oneDNN's.

Two parts, both at 2 threads, channels_last, with ednas's malloc tuning, the
two ways interleaved round by round (so a change of the machine's speed hits
both alike) and compared as the median of the per-round ratios:

* ``layers``: every depthwise layer of the elastic ``cifar`` supernet at batch
  64 (shapes taken from the built supernet), plus 3x3 and 5x5 kernels at the
  same shapes: the weight gradient alone, oneDNN's
  (``aten.convolution_backward``) against :func:`ednas.nn.dwconv.depthwise_weight_grad`,
  and the largest relative difference between the two gradients;
* ``steps``: whole training steps (forward, cross-entropy, backward, SGD) of
  the ``cifar`` supernet (soft Gumbel samples), its largest fixed network, and
  the report's ``uniform`` baseline (3x3, expansion 6), with the rewrite on and
  off (:func:`ednas.nn.dwconv.onednn_weight_grad`), and the largest difference
  between the two ways' weight gradients after one step from the same state.

    python benchmarks/dw_grad.py [--rounds 5] [--quick]
    python benchmarks/dw_grad.py --imagenet      # the steps of the paper-scale space (224x224, batch 8)

Writes ``results/dw_grad.json`` (``dw_grad_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402


def _time(f, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e3


def layer_shapes(batch: int) -> list[dict]:
    """(channels, size, stride, kernel) of each depthwise conv in the cifar supernet, and the same at 3x3 and 5x5."""
    import torch

    from ednas import build_supernet, preset
    from ednas.nn import MetaKernelConv

    net = build_supernet(preset("cifar"), 10)
    seen = []

    def hook(mod, inp, out):
        k = mod.kmax if isinstance(mod, MetaKernelConv) else mod.kernel_size[0]
        s = mod.stride if isinstance(mod.stride, int) else mod.stride[0]
        seen.append((inp[0].shape[1], inp[0].shape[-1], s, k))

    hooks = [m.register_forward_hook(hook) for m in net.modules()
             if isinstance(m, MetaKernelConv) or (isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels == m.out_channels > 1)]
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return [{"channels": c, "size": size, "stride": s, "kernel": kk, "batch": batch, "in_supernet": kk == k}
            for c, size, s, k in dict.fromkeys(seen) for kk in sorted({3, 5, k})]


def layer_row(r: dict, rounds: int, n: int) -> dict:
    import torch
    import torch.nn.functional as F

    from ednas.nn.dwconv import depthwise_weight_grad

    c, size, s, k, batch = r["channels"], r["size"], r["stride"], r["kernel"], r["batch"]
    p = k // 2
    x = torch.randn(batch, c, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, 1, k, k)
    g = torch.randn_like(F.conv2d(x, w, None, s, p, 1, c))

    def onednn():
        return torch.ops.aten.convolution_backward(g, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], c, [False, True, False])[1]

    def ours():
        return depthwise_weight_grad(x, g, (k, k), (s, s), (p, p))

    def fwd():
        return F.conv2d(x, w, None, s, p, 1, c)

    ref, new = onednn(), ours()
    fwd()
    a, b, fw = [], [], []
    for _ in range(rounds):
        a.append(_time(onednn, n))
        b.append(_time(ours, n))
        fw.append(_time(fwd, n))
    row = {**r, "onednn_ms": statistics.median(a), "ednas_ms": statistics.median(b), "forward_ms": statistics.median(fw),
           "speedup": statistics.median([x_ / y_ for x_, y_ in zip(a, b)]),
           "onednn_over_forward": statistics.median(a) / statistics.median(fw),
           "max_rel_diff": float((new - ref).abs().max() / ref.abs().max())}
    print(f"  c{c} {size}x{size} s{s} k{k}: oneDNN {row['onednn_ms']:.2f} ms, ednas {row['ednas_ms']:.2f} ms, "
          f"x{row['speedup']:.2f} (forward {row['forward_ms']:.2f} ms), rel diff {row['max_rel_diff']:.1e}", flush=True)
    return row


def step_row(name: str, net, rounds: int, n: int, batch: int, size: int = 32) -> dict:
    """Training steps of ``net`` with the rewrite off and on, interleaved; and the two ways' gradients from one state."""
    import copy

    import torch
    import torch.nn.functional as F

    from ednas.nn import MetaKernelConv
    from ednas.nn.dwconv import onednn_weight_grad, uses_rewrite
    from ednas.search.gumbel import sample_choices

    supernet = hasattr(net, "choices")
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def step():
        if supernet:
            sample_choices(net.choices(), tau=1.0, hard=False, generator=gen)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()

    def grads(fast: bool) -> dict:
        twin = copy.deepcopy(net)
        if supernet:
            sample_choices(twin.choices(), tau=1.0, hard=False, generator=torch.Generator().manual_seed(1))
        torch.manual_seed(1)  # the same dropout masks both ways
        with torch.enable_grad() if fast else onednn_weight_grad():
            F.cross_entropy(twin(x), y).backward()
        return {k: q.grad.clone() for k, q in twin.named_parameters() if q.grad is not None}

    ours, ref = grads(True), grads(False)
    diff, worst = max((float((ours[k] - ref[k]).abs().max() / max(float(ref[k].abs().max()), 1e-12)), k) for k in ref)
    for _ in range(3):
        step()
    a, b = [], []
    for _ in range(rounds):
        with onednn_weight_grad():
            a.append(_time(step, n))
        b.append(_time(step, n))
    ratios = [x_ / y_ for x_, y_ in zip(a, b)]
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(uses_rewrite(inp[0], mod.weight, mod.stride)))
             for m in net.modules() if isinstance(m, MetaKernelConv)
             or (isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels == m.out_channels > 1)]
    F.cross_entropy(net(x), y)
    for h in hooks:
        h.remove()
    row = {"network": name, "batch": batch, "input_size": size, "onednn_step_ms": statistics.median(a), "ednas_step_ms": statistics.median(b),
           "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
           "max_rel_grad_diff": diff, "max_rel_grad_diff_at": worst, "max_abs_grad_there": float(ref[worst].abs().max()),
           "depthwise_convs_rewritten": f"{sum(seen)} of {len(seen)}"}
    print(f"  {name}: step oneDNN {row['onednn_step_ms']:.1f} ms, ednas {row['ednas_step_ms']:.1f} ms, x{row['speedup']:.2f} "
          f"({row['speedup_min']:.2f}-{row['speedup_max']:.2f}), grad rel diff {diff:.1e} ({worst}), rewritten: {row['depthwise_convs_rewritten']}",
          flush=True)
    return row


def bench_steps(rounds: int, n: int, batch: int, name: str = "cifar", size: int = 32) -> list[dict]:
    from ednas import build_model, build_supernet, preset
    from ednas.arch.scale import uniform_arch

    space = preset(name)
    nets = {"supernet": lambda: build_supernet(space, 10), "largest fixed": lambda: build_model(space.largest(), 10),
            "uniform": lambda: build_model(uniform_arch(space), 10)}
    return [step_row(net, make(), rounds, n, batch, size) for net, make in nets.items()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds of few repeats: proves it runs")
    ap.add_argument("--imagenet", action="store_true", help="only the training steps, of the paper-scale imagenet space at 224x224, "
                    "batch 8 (results/dw_grad_imagenet.json)")
    a = ap.parse_args()
    import torch

    from ednas._perf import set_threads, tune_malloc

    tune_malloc()
    set_threads(2)
    rounds = 2 if a.quick else a.rounds
    if a.imagenet:
        print("training steps, imagenet 224x224, batch 8:", flush=True)
        write_result("dw_grad_imagenet", {"threads": torch.get_num_threads(), "rounds": rounds,
                                          "steps": bench_steps(rounds, 1 if a.quick else 3, 8, "imagenet", 224)})
        return
    print("layers (weight gradient alone):", flush=True)
    layers = [layer_row(r, rounds, 2 if a.quick else 10) for r in layer_shapes(64)]
    print("training steps:", flush=True)
    steps = bench_steps(rounds, 1 if a.quick else 5, 64)
    sup = [r["speedup"] for r in layers if r["in_supernet"]]
    write_result("dw_grad_quick" if a.quick else "dw_grad", {
        "threads": torch.get_num_threads(),
        "rounds": rounds,
        "layers": layers,
        "steps": steps,
        "supernet_layers_speedup_range": [min(sup), max(sup)],
    })


if __name__ == "__main__":
    main()
