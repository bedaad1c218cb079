"""Throughput of grid saliency and of the IG/SG baselines (Grid Saliency S1.2 settings).

Prints, for the quick profile's segmentation network (the tiny U-Net, random
weights: throughput does not depend on them) and one batch of textured-MNIST
test images, measured in this run:

* ``grid_saliency_batched_images_per_s``: context saliency of the whole batch
  in one batched optimisation (5 grey probes + 100 SGD steps + 1 final
  evaluation per image);
* ``grid_saliency_loop_images_per_s``: the same, one image at a time;
* ``grid_saliency_limit_images_per_s``: the network's plain forward+backward
  (softmax score to the input) throughput at the same batch size, divided by
  105, the passes the method needs per image: what a method with no overhead
  would reach;
* ``ig_speedup_vs_captum`` / ``sg_speedup_vs_captum``: Captum's time over ours
  for integrated gradients (25 Gauss-Legendre nodes) and SmoothGrad (25
  samples, sigma = 0.15) of the same request objective, each at its default
  chunking (ours: ``DEFAULT_BATCH`` network inputs per pass; Captum: all of a
  call's inputs in one pass). The largest difference between the two results
  and our time with Captum's chunking go to stderr.

Run: ``python benchmarks/grid_saliency.py [--batch 16] [--loop 2] [--grad-batch 4]``
(the thread count is torch's default; set ``OMP_NUM_THREADS`` to change it).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_times(fns, repeats: int) -> list[float]:
    """Best time of each function, timed in turn (interleaved, so drift in machine load
    affects all of them alike)."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def main() -> None:
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency

    from gsutils.data.toy import BiasConfig, make_toy_dataset, toy_config
    from gsutils.models.unet import build_unet
    from gsutils.profiles import get_profile
    from gsutils.saliency.gradient import integrated_gradients, request_objective, smoothgrad
    from gsutils.saliency.grid import GridSaliencyConfig, context_saliency, segmentation_probs

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16, help="images per batch")
    ap.add_argument("--loop", type=int, default=2, help="images timed one at a time")
    ap.add_argument("--grad-batch", type=int, default=4, help="images per IG/SG call")
    ap.add_argument("--repeats", type=int, default=5, help="timings of IG/SG (best is kept)")
    a = ap.parse_args()

    prof = get_profile("quick", device="cpu")
    model = build_unet(prof.train.backbone, 11, 1, seed=0).eval()
    data = make_toy_dataset(toy_config(prof, BiasConfig(strength="strong", digit=2, texture=0)),
                            split="test", n=max(a.batch, 64))
    x = torch.from_numpy(np.ascontiguousarray(data.images[: a.batch]))  # (B, 1, H, W)
    lo = x.flatten(1).min(1).values[:, None, None, None]
    hi = x.flatten(1).max(1).values[:, None, None, None]
    x = (x - lo) / (hi - lo)  # every image spans [0, 1]: one SmoothGrad sigma for all (Captum)
    r = torch.from_numpy(data.digit_mask[: a.batch])  # (B, H, W)
    c = torch.from_numpy(data.digits[: a.batch])  # (B,)
    cfg = GridSaliencyConfig()
    passes = len(cfg.greys) + cfg.steps
    log(f"network: {prof.train.backbone} U-Net, batch {a.batch}, {torch.get_num_threads()} threads, "
        f"{passes} passes per image")

    # warm-up
    context_saliency(model, x[:2], r[:2], c[:2], config=GridSaliencyConfig(steps=2))

    t_batched = best_time(lambda: context_saliency(model, x, r, c, config=cfg), 1)
    batched = a.batch / t_batched
    t_loop = best_time(lambda: [context_saliency(model, x[i:i + 1], r[i:i + 1], c[i:i + 1], config=cfg)
                                for i in range(a.loop)], 1)
    loop = a.loop / t_loop

    def fwd_bwd() -> None:
        xx = x.clone().requires_grad_(True)
        obj = request_objective(segmentation_probs(model, xx), r, c)  # (B,)
        torch.autograd.grad(obj.sum(), xx)

    fwd_bwd()
    t_pass = best_time(fwd_bwd, 5)
    limit = a.batch / t_pass / passes
    log(f"forward+backward: {a.batch / t_pass:.1f} images/s; batched/limit = {batched / limit:.2f}, "
        f"batched/loop = {batched / loop:.2f}")
    print(f"grid_saliency_batched_images_per_s: {batched:.3f}")
    print(f"grid_saliency_loop_images_per_s: {loop:.3f}")
    print(f"grid_saliency_limit_images_per_s: {limit:.3f}")

    # IG and SG against Captum on the same objective, same inputs per pass
    x, r, c = x[: a.grad_batch], r[: a.grad_batch], c[: a.grad_batch]

    def objective(inp, req, cls):
        return request_objective(segmentation_probs(model, inp), req, cls)  # (B,)

    # ours at its default chunking (DEFAULT_BATCH inputs per pass) against Captum at its
    # default (every input of a call in one pass); same objective, same results
    ig = IntegratedGradients(objective)
    ours_ig = lambda: integrated_gradients(model, x, r, c, steps=25)  # noqa: E731
    same_ig = lambda: integrated_gradients(model, x, r, c, steps=25, batch_size=25 * len(x))  # noqa: E731
    theirs_ig = lambda: ig.attribute(x, baselines=0.0, n_steps=25,  # noqa: E731
                                     additional_forward_args=(r, c))
    diff = (ours_ig() - theirs_ig()).abs().max().item()
    t_ours, t_same, t_theirs = best_times((ours_ig, same_ig, theirs_ig), a.repeats)
    log(f"IG: ours {t_ours:.3f} s ({t_same:.3f} s with Captum's chunking), Captum {t_theirs:.3f} s, "
        f"max |difference| {diff:.2e}")
    print(f"ig_speedup_vs_captum: {t_theirs / t_ours:.3f}")

    nt = NoiseTunnel(Saliency(objective))

    def theirs_sg():
        torch.manual_seed(0)
        return nt.attribute(x, nt_type="smoothgrad", nt_samples=25, stdevs=0.15, abs=False,
                            additional_forward_args=(r, c))

    ours_sg = lambda: smoothgrad(model, x, r, c, samples=25, noise_level=0.15, seed=0)  # noqa: E731
    same_sg = lambda: smoothgrad(model, x, r, c, samples=25, noise_level=0.15, seed=0,  # noqa: E731
                                 batch_size=25 * len(x))
    diff = (ours_sg() - theirs_sg()).abs().max().item()
    t_ours, t_same, t_theirs = best_times((ours_sg, same_sg, theirs_sg), a.repeats)
    log(f"SG: ours {t_ours:.3f} s ({t_same:.3f} s with Captum's chunking), Captum {t_theirs:.3f} s, "
        f"max |difference| {diff:.2e}")
    print(f"sg_speedup_vs_captum: {t_theirs / t_ours:.3f}")


if __name__ == "__main__":
    main()
