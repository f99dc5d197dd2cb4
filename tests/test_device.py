"""Device and mixed precision settings, and batches that do not depend on how they are dealt out."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ednas.arch.spec import parse_arch
from ednas.cli import main
from ednas.config import resolve_config
from ednas.data import load_data, make_loader
from ednas.data.loaders import _pad_crop_flip
from ednas.device import DeviceConfig, Hardware, resolve_hardware
from ednas.errors import ConfigError
from tests.conftest import TINY_SPACE
from tests.search_helpers import SyntheticLatency, make_search


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["train", "search", "run", "eval", "profile"])
def test_cuda_without_cuda_is_one_line_before_any_work(tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = {"train": ["train", "--out", str(out)], "search": ["search", "--out", str(out)], "run": ["run", "--out", str(out)],
            "eval": ["eval", "--model", str(tmp_path / "model.pt")], "profile": ["profile", "--model", "cifar"]}[command]
    assert main(argv + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: no CUDA device is available here" in err[0], err
    assert not out.exists()  # refused while the settings were read, before anything was written


def test_device_and_amp_settings_are_checked():
    for bad, fragment in ((dict(device="gpu"), "expected auto, cpu, cuda or cuda:N"), (dict(device="cpu:1"), "expected auto, cpu"),
                          (dict(amp="fp8"), "expected one of auto, off, bf16, fp16")):
        with pytest.raises(ConfigError, match=fragment):
            resolve_config(DeviceConfig, bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
            resolve_config(DeviceConfig, dict(amp="fp16"))
        hw = resolve_hardware(DeviceConfig())
        assert hw.device.type == "cpu" and hw.amp == "off"  # auto: no mixed precision on the CPU
    assert resolve_hardware(DeviceConfig(device="cpu", amp="bf16")).amp_dtype == torch.bfloat16


def test_bf16_search_step_runs_the_weight_step_in_bf16_and_the_architecture_step_in_fp32(tmp_path):
    space = parse_arch(TINY_SPACE)
    s = make_search(tmp_path, SyntheticLatency(space), epochs=2, arch_warmup_epochs=0, paths=2,
                    hardware=Hardware(torch.device("cpu"), "bf16"))
    seen = []
    conv = next(m for m in s.paths[0].modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    losses = []
    step = s._weight_step
    s._weight_step = lambda *a, **k: losses.append(step(*a, **k)) or losses[-1]
    rec = s._epoch(0, None, None)
    assert losses and all(np.isfinite(losses)) and np.isfinite(rec["ce_arch"]) and np.isfinite(rec["E_lat_ms_sampled"])
    # per iteration: the weight step's forward in bf16, then the architecture step's in fp32
    assert seen[0::2] == [torch.bfloat16] * s.steps_per_epoch and seen[1::2] == [torch.float32] * s.steps_per_epoch
    assert all(p.dtype == torch.float32 for p in s.paths[0].parameters())  # autocast leaves the weights in fp32


def test_batches_do_not_depend_on_how_they_are_dealt_out():
    """W shards of batch B hand out, step by step, the batch of W x B one loader hands out (images and augmentation)."""
    d = load_data("synthetic:classes=4,n=100,size=32")
    idx = np.arange(3, 100)
    whole = make_loader(d, "train", 16, True, idx, seed=5)
    parts = [make_loader(d, "train", 8, True, idx, seed=5, shard=(r, 2)) for r in range(2)]
    for loader in [whole, *parts]:
        loader.set_epoch(3)
    assert whole.rounds == parts[0].rounds == parts[1].rounds == len(whole) == 6
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *parts):
        assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))


def test_vectorised_pad_crop_flip_equals_cropping_each_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 10, 12), dtype=torch.uint8, generator=g)
    offs = torch.randint(0, 9, (6, 2), generator=g)
    flip = torch.tensor([True, False, True, True, False, False])
    got = _pad_crop_flip(x, 4, offs, flip)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(6):
        want = padded[i, :, offs[i, 0] : offs[i, 0] + 10, offs[i, 1] : offs[i, 1] + 12]
        assert torch.equal(got[i], want.flip(-1) if flip[i] else want)


def test_folder_augmentation_is_seeded_per_image_whatever_the_workers(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    d = load_data(f"folder:{tmp_path}", input_size=32)
    whole = make_loader(d, "train", 4, True, seed=1, workers=0)
    parts = [make_loader(d, "train", 2, True, seed=1, workers=w, shard=(r, 2)) for r, w in ((0, 1), (1, 0))]
    for loader in [whole, *parts]:
        loader.set_epoch(2)
    batches = list(zip(whole, *parts))
    assert len(batches) == 3
    for (x, y), (x0, y0), (x1, y1) in batches:
        assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))
    whole.set_epoch(3)
    assert not torch.equal(next(iter(whole))[0], batches[0][0][0])  # another epoch, other crops


class _Clock:
    """The trainer's ``time`` module with a virtual offset: a slow loader advances it instead of sleeping.

    A real sleep made the test a race against the machine's load (a step
    slower than the sleep under a busy CI runner); on this clock each batch
    arrives 10 s late whatever the load, and the test takes no extra time.
    """

    def __init__(self):
        import time

        self._time, self.offset = time, 0.0

    def perf_counter(self):
        return self._time.perf_counter() + self.offset

    def time(self):
        return self._time.time() + self.offset

    def __getattr__(self, name):
        return getattr(self._time, name)


class _SlowBatches:
    """A training loader whose every batch takes ``delay`` seconds (of ``clock``) to arrive (a slow disk or decoder)."""

    def __init__(self, loader, delay: float, clock: _Clock):
        self._loader, self._delay, self._clock = loader, delay, clock

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        for batch in self._loader:
            self._clock.offset += self._delay
            yield batch


@pytest.mark.parametrize("delay", [0.0, 10.0])
def test_data_wait_share_is_the_share_of_step_time_spent_waiting_for_batches(tmp_path, monkeypatch, delay):
    """A loader that makes each batch wait 10 s (steps of a few ms) shows up as most of the time; an in-memory one does not."""
    import ednas.train.trainer as trainer
    from ednas.train.trainer import TrainConfig, train

    real = trainer.make_loader
    clock = _Clock()

    def loader(data, split, *a, **k):
        l = real(data, split, *a, **k)
        return _SlowBatches(l, delay, clock) if split == "train" and delay else l

    monkeypatch.setattr(trainer, "make_loader", loader)
    monkeypatch.setattr(trainer, "time", clock)
    m = train(TrainConfig(epochs=1, batch_size=16), tmp_path, arch="stem_k11_m1_c8_s1 | ir_k3_e2_c8 | head_c16",
              data=load_data("synthetic:classes=4,n=160,size=16"), progress=False, tensorboard=False)
    share = m["data_wait_share"]
    if delay:
        assert share > 0.5, share
    else:
        assert share < 0.3, share
