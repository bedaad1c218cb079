"""Training throughput of the S1.2 U-Nets on CPU (images per second).

For each backbone, a few RMSprop steps of pixel-wise cross entropy on random
64x64 grayscale batches, after one warm-up step. Prints one line per backbone::

    train_images_per_s_<backbone>: N

and, as the in-run baseline, ``train_speed_vs_tiny_<backbone>: r`` (images/s
relative to the tiny U-Net measured in the same run). Commentary goes to
stderr. ``--steps`` and ``--batch`` trade accuracy for time; VGG16 runs at most
two measured steps of a batch of at most 20.

Usage: ``python benchmarks/train_throughput.py [--threads N] [--steps 3] [--batch 50]``
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from gsutils.models.unet import BACKBONES, build_unet


def images_per_s(backbone: str, batch: int, steps: int, size: int = 64) -> float:
    """Measured training images/s of one backbone on CPU."""
    g = torch.Generator().manual_seed(0)
    model = build_unet(backbone, seed=0).train()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size, generator=g)  # (B, 1, H, W)
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--backbones", nargs="*", default=list(BACKBONES))
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, batch {a.batch}, "
          f"{a.steps} steps (vgg16: fewer), 64x64 inputs", file=sys.stderr)
    rates = {}
    for bb in a.backbones:
        heavy = bb == "vgg16"
        rates[bb] = images_per_s(bb, min(a.batch, 20) if heavy else a.batch, min(a.steps, 2) if heavy else a.steps)
        print(f"train_images_per_s_{bb}: {rates[bb]:.1f}", flush=True)
    if "tiny" in rates:
        for bb, r in rates.items():
            if bb != "tiny":
                print(f"train_speed_vs_tiny_{bb}: {r / rates['tiny']:.3f}")


if __name__ == "__main__":
    main()
