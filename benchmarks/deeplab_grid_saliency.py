"""Throughput of grid saliency on the S2 DeepLabv3+ at the street-scene stand-in's size.

Prints, measured in this run, for the quick profile's DeepLab (random
weights: throughput does not depend on them) on random 64 x 128 images with a
request rectangle each:

* ``deeplab_grid_saliency_images_per_s``: context saliency with the bilinear
  mask (``gsutils.explain``; 5 grey probes + ``steps`` SGD steps + 1 final
  evaluation per image), the batch optimised together;
* ``deeplab_forward_backward_limit_images_per_s``: what a method with no
  overhead would reach at the same batch size: ``steps`` plain
  forward+backward passes (class score to the input) plus 7 forward passes
  (the clean image, 5 grey probes, the final loss) per image;
* ``deeplab_grid_saliency_vs_limit``: the ratio of the two (1.0 = no overhead).

Run: ``python benchmarks/deeplab_grid_saliency.py [--batch 16] [--steps 50]``
(the thread count is torch's default; set ``OMP_NUM_THREADS`` to change it).
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gsutils import explain
    from gsutils.models.deeplab import deeplab
    from gsutils.profiles import get_profile
    from gsutils.saliency.grid import GridSaliencyConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=None, help="SGD steps (default: the quick profile's)")
    a = ap.parse_args()
    s = get_profile("quick", device="cpu").scenes
    steps = a.steps or s.grid_steps
    torch.manual_seed(0)
    model = deeplab(s.encoder, 19, decoder_channels=s.decoder_channels).eval()
    x = torch.rand(a.batch, 3, s.height, s.width)
    r = torch.zeros(a.batch, s.height, s.width, dtype=torch.bool)
    r[:, 20:44, 40:60] = True
    cfg = GridSaliencyConfig(grid=tuple(s.mask_grid), steps=steps)

    def fwd_bwd() -> None:
        xi = x.clone().requires_grad_(True)
        model(xi).softmax(1)[:, 11].sum().backward()

    def fwd() -> None:
        with torch.no_grad():
            model(x).softmax(1)

    fwd_bwd()  # warm-up
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        fwd_bwd()
    t_fb = (time.perf_counter() - t) / reps  # one forward+backward of the batch
    t = time.perf_counter()
    for _ in range(reps):
        fwd()
    t_f = (time.perf_counter() - t) / reps  # one forward of the batch
    limit = a.batch / (steps * t_fb + 7 * t_f)  # steps with gradients; 5 grey probes, f(x), final loss
    t = time.perf_counter()
    explain(model, x, r, 11, config=cfg)
    rate = a.batch / (time.perf_counter() - t)
    print(f"deeplab_image_size: {s.height}x{s.width}")
    print(f"deeplab_grid_saliency_steps: {steps}")
    print(f"deeplab_grid_saliency_images_per_s: {rate:.3f}")
    print(f"deeplab_forward_backward_limit_images_per_s: {limit:.3f}")
    print(f"deeplab_grid_saliency_vs_limit: {rate / limit:.3f}")


if __name__ == "__main__":
    main()
