"""Training throughput of the S1.2 U-Nets on CPU (images per second).

For each backbone, a few RMSprop steps of pixel-wise cross entropy on random
64x64 grayscale batches, after one warm-up step. Prints one line per backbone::

    train_images_per_s_<backbone>: N

in the memory format training uses (channels last, see
``gsutils.experiments.grid.segmentation.MEMORY_FORMAT``), and two ratios against
baselines measured in the same run: ``train_speed_vs_tiny_<backbone>: r``
(images/s relative to the tiny U-Net) and
``train_channels_last_speedup_<backbone>: r`` (channels last against the
default contiguous layout, the same steps on the same data). Commentary goes
to stderr. ``--steps`` and ``--batch`` trade accuracy for time; VGG16 runs at most
two measured steps of a batch of at most 20.

With ``--to-gate`` it instead trains the profile's unbiased network with the
profile's own recipe (the library's training loop, in a temporary results
folder), measures its mean digit IoU on the unbiased test set every
``--eval-every`` epochs and prints::

    steps_to_gate_<profile>: N            (or "not reached")
    best_digit_miou_<profile>: x
    digit_miou_at_step_<s>: x             (one line per evaluation)

(about 10 minutes at the quick profile on one thread).

Usage: ``python benchmarks/train_throughput.py [--threads N] [--steps 3] [--batch 50] [--size 64]``
or ``python benchmarks/train_throughput.py --to-gate [--profile quick] [--eval-every 4]``
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from gsutils.experiments.grid.segmentation import MEMORY_FORMAT
from gsutils.models.unet import BACKBONES, build_unet


def images_per_s(backbone: str, batch: int, steps: int, size: int = 64,
                 memory_format: torch.memory_format = MEMORY_FORMAT) -> float:
    """Measured training images/s of one backbone on CPU in ``memory_format``."""
    g = torch.Generator().manual_seed(0)
    model = build_unet(backbone, seed=0).train().to(memory_format=memory_format)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size, generator=g).contiguous(memory_format=memory_format)  # (B, 1, H, W)
    y = torch.randint(0, 11, (batch, size, size), generator=g)  # (B, H, W)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, kernel selection)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def steps_to_gate(profile_name: str, eval_every: int) -> None:
    """Train the profile's unbiased network; print the digit mIoU curve and the steps to the gate."""
    import math
    import tempfile

    from gsutils.experiments.grid import segmentation as seg
    from gsutils.metrics.segmentation import ConfusionMeter, mean_iou
    from gsutils.profiles import get_profile

    prof = get_profile(profile_name, device="cpu", results_dir=tempfile.mkdtemp(prefix="to_gate_"))
    run = seg.grid_runs(prof)[0]  # the unbiased network
    steps_per_epoch = math.ceil(prof.toy.n_train / prof.train.batch_size)
    x, y = seg._data_tensors(seg.unbiased_test_set(prof))
    gate, reached, best = prof.train.gate_digit_miou, None, 0.0
    state: dict = {}

    def on_epoch_end(epoch: int, record: dict) -> None:
        nonlocal reached, best
        if epoch % eval_every and epoch != prof.train.epochs:
            return
        model = state.setdefault("model", seg.build_unet(run.backbone, seg.NUM_CLASSES, 1))
        ckpt = seg._load_bytes(seg.read_checked(seg.model_dir(prof, run) / "checkpoint.pt"))
        model.load_state_dict(ckpt["model"])
        meter = ConfusionMeter(seg.NUM_CLASSES)
        meter.update(seg.predict(model.eval(), x), y)
        miou = mean_iou(meter.iou()[:10])
        best = max(best, miou)
        print(f"digit_miou_at_step_{epoch * steps_per_epoch}: {miou:.3f}", flush=True)
        if reached is None and miou >= gate:
            reached = epoch * steps_per_epoch

    seg.train_unet(prof, run, progress=False, on_epoch_end=on_epoch_end)
    print(f"steps_to_gate_{profile_name}: {reached if reached is not None else 'not reached'}"
          f"  # gate {gate}, {prof.train.epochs * steps_per_epoch} steps trained")
    print(f"best_digit_miou_{profile_name}: {best:.3f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--size", type=int, default=64, help="input side (the quick profile: 32)")
    ap.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    ap.add_argument("--to-gate", action="store_true",
                    help="train the profile's unbiased network and report the steps to the gate")
    ap.add_argument("--profile", default="quick", help="with --to-gate: the profile (default quick)")
    ap.add_argument("--eval-every", type=int, default=4, help="with --to-gate: epochs between evaluations")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.to_gate:
        steps_to_gate(a.profile, a.eval_every)
        return
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, "
          f"{a.steps} steps (vgg16: fewer), {a.size}x{a.size} inputs", file=sys.stderr)
    rates, speedups = {}, {}
    for bb in a.backbones:
        heavy = bb == "vgg16"
        batch, steps = (min(a.batch, 20), min(a.steps, 2)) if heavy else (a.batch, a.steps)
        rates[bb] = images_per_s(bb, batch, steps, a.size)
        print(f"train_images_per_s_{bb}: {rates[bb]:.1f}", flush=True)
        speedups[bb] = rates[bb] / images_per_s(bb, batch, steps, a.size, torch.contiguous_format)
    for bb, r in speedups.items():
        print(f"train_channels_last_speedup_{bb}: {r:.3f}")
    if "tiny" in rates:
        for bb, r in rates.items():
            if bb != "tiny":
                print(f"train_speed_vs_tiny_{bb}: {r / rates['tiny']:.3f}")


if __name__ == "__main__":
    main()
