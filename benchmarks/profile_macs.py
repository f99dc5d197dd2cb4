"""Benchmark: our MAC counter against fvcore and the published figures.

For timm/torchvision reference networks at 224x224 (``pretrained=False``),
counts conv + linear MACs with ``ednas.nn.macs.count_macs`` (what
``ednas profile`` reports) and with fvcore's ``FlopCountAnalysis`` restricted
to the same operators, and compares both with the papers' figures.  Also
checks the ednas ``cifar`` preset against the latency module's operator sum.

    python benchmarks/profile_macs.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

# name -> published MACs (M): MobileNetV2 300, MnasNet-B1 315, MobileNetV3-L 219,
# EfficientNet-B0 390, SPNAS 365, FBNet-C 375, MixNet-S 256, MobileNetV3-S 66
NETS = {
    "timm:mobilenetv2_100": 300, "timm:mnasnet_100": 315, "timm:mobilenetv3_large_100": 219, "timm:efficientnet_b0": 390,
    "timm:spnasnet_100": 365, "timm:fbnetc_100": 375, "timm:mixnet_s": 256, "timm:mobilenetv3_small_100": 66,
    "torchvision:mobilenet_v2": 300, "torchvision:mnasnet1_0": 315,
}


def main() -> None:
    import torch
    from fvcore.nn import FlopCountAnalysis

    from ednas.arch.spec import load_arch
    from ednas.latency.ops import arch_ops
    from ednas.nn.macs import count_macs
    from ednas.report.profile import load_network

    rows = []
    for spec, pub in NETS.items():
        net = load_network(spec, 224)
        t = time.perf_counter()
        ours, layers = count_macs(net.deploy, 224)
        t_ours = time.perf_counter() - t
        fa = FlopCountAnalysis(net.deploy, torch.zeros(1, 3, 224, 224))
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        by_op = fa.by_operator()
        fv = by_op.get("conv", 0) + by_op.get("linear", 0) + by_op.get("addmm", 0)
        rows.append({"model": spec, "params": int(sum(p.numel() for p in net.model.parameters())), "layers": len(layers),
                     "macs_ours": ours, "macs_fvcore_conv_linear": int(fv), "ours_vs_fvcore": ours / fv, "published_M": pub,
                     "ours_vs_published": ours / 1e6 / pub, "count_s": t_ours})
        print(f"{spec:32s} ours {ours / 1e6:7.2f} M  fvcore {fv / 1e6:7.2f} M  published {pub} M  ratio {ours / 1e6 / pub:.3f}", flush=True)
    ednas = []
    for pick in ("largest", "smallest_kernels"):
        space, size = load_arch("cifar")
        arch = getattr(space, pick)()
        net = load_network(arch.format(), size, 10)
        ours, _ = count_macs(net.deploy, size)
        ops = arch_ops(arch, size, 10)
        ednas.append({"arch": arch.format(), "macs_ours": ours, "macs_latency_ops_conv_fc": sum(o.macs for o in ops if o.is_conv or o.type == "fc"),
                      "macs_latency_ops_all": sum(o.macs for o in ops)})
    write_result("profile_macs", {"input_size": 224, "networks": rows, "ednas_cifar": ednas})


if __name__ == "__main__":
    main()
