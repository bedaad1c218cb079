"""Paper-scale cost of Grid Saliency S1: measured per backbone, extrapolated to the full grid.

For each U-Net backbone (the paper's smp VGG16 / MobileNetV2 / ResNet18 at
64 px, and the quick profile's slim variants at 32 px), measured in this run
on this machine (``--device``; the thread count is torch's default, set
``OMP_NUM_THREADS`` to change it):

* ``train_step_s_<bb>``: one training step of the paper's recipe (RMSprop,
  batch 100, pixel-wise cross entropy), best of ``--repeats``;
* ``grid_saliency_s_per_image_<bb>``: context saliency with the S1.2 settings
  (5 grey probes, 100 SGD steps, 1 final evaluation) per image, measured on a
  batch of ``--images`` test-sized images with ``--grid-steps`` steps and
  scaled linearly to 100 steps (the per-step cost is constant);
* ``step_ratio_<bb>_vs_<baseline>``: the training step relative to the
  baseline backbone (``--baseline``, default ``slim_vgg16``) measured in the
  same run.

Extrapolated from those, for the paper's full S1 grid (5 seeds x 5 textures x
10 digits x 2 strengths biased networks + 5 unbiased networks per backbone,
50 epochs of 50,000 images, saliency of 100 test images per digit per
biased network; IG and SG cost 25 network passes each, grid saliency about
106):

* ``train_device_hours_<bb>`` / ``saliency_device_hours_<bb>`` on one device
  of this kind, ``full_grid_device_hours`` over all paper backbones, and
  ``full_grid_hours_on_<N>_workers`` for each ``--workers`` (perfect scaling:
  the tasks are independent, one device per worker).

Run: ``python benchmarks/paper_scale.py [--device cuda] [--workers 8 32]``.
Without a GPU the device lines describe the CPU: the GPU cost needs this
script run on a GPU (``gpu_measured: no`` says so).
"""

from __future__ import annotations

import argparse
import time

import torch

#: the paper's S1 grid per backbone
SEEDS, TEXTURES, DIGITS, STRENGTHS = 5, 5, 10, 2
EPOCHS, N_TRAIN, BATCH = 50, 50_000, 100
IMAGES_PER_DIGIT = 100
#: network passes (forward + backward) per image of the gradient baselines (VG 1, IG 25, SG 25)
GRADIENT_PASSES = 51
#: passes of grid saliency per image: 5 grey probes + 100 steps + 1 final evaluation
GRID_PASSES = 106


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def measure(backbone: str, size: int, device: str, repeats: int, images: int, grid_steps: int) -> dict[str, float]:
    from gsutils.models.unet import build_unet
    from gsutils.saliency.grid import GridSaliencyConfig, context_saliency

    model = build_unet(backbone, 11, 1, seed=0).to(device)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 1, size, size, generator=g).to(device)
    y = torch.randint(0, 11, (BATCH, size, size), generator=g).to(device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up
    train_s = best_time(step, repeats)
    model.eval()
    xi = x[:images]
    req = torch.zeros(images, size, size, dtype=torch.bool, device=device)
    req[:, size // 4: size // 2, size // 4: size // 2] = True
    cfg = GridSaliencyConfig(steps=grid_steps)
    context_saliency(model, xi, req, 3, config=cfg)  # warm-up
    t = best_time(lambda: context_saliency(model, xi, req, 3, config=cfg), max(1, repeats // 2))
    # 5 probes + steps + 1 final evaluation measured; scale the steps to the paper's 100
    per_pass = t / (5 + grid_steps + 1)
    return {"train_step_s": train_s, "grid_s_per_image": per_pass * GRID_PASSES / images,
            "pass_s_per_image": per_pass / images}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backbones", nargs="*",
                    default=["slim_vgg16", "slim_mobilenet_v2", "slim_resnet18", "vgg16", "mobilenet_v2", "resnet18"])
    ap.add_argument("--baseline", default="slim_vgg16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--grid-steps", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="*", default=[8, 32])
    a = ap.parse_args()
    print(f"device: {a.device}")
    print(f"gpu_measured: {'yes' if a.device.startswith('cuda') else 'no'}")
    print(f"torch_threads: {torch.get_num_threads()}")
    res = {}
    for bb in a.backbones:
        size = 32 if bb.startswith("slim_") else 64
        res[bb] = m = measure(bb, size, a.device, a.repeats, a.images, a.grid_steps)
        print(f"train_step_s_{bb}: {m['train_step_s']:.4f}")
        print(f"grid_saliency_s_per_image_{bb}: {m['grid_s_per_image']:.4f}")
    if a.baseline in res:
        for bb in res:
            print(f"step_ratio_{bb}_vs_{a.baseline}: {res[bb]['train_step_s'] / res[a.baseline]['train_step_s']:.2f}")
    biased = SEEDS * TEXTURES * DIGITS * STRENGTHS
    networks = biased + SEEDS
    steps = EPOCHS * N_TRAIN // BATCH
    print(f"networks_per_backbone: {networks}")
    total = 0.0
    for bb, m in res.items():
        train_h = networks * steps * m["train_step_s"] / 3600
        per_image = m["grid_s_per_image"] + GRADIENT_PASSES * m["pass_s_per_image"]
        sal_h = biased * 10 * IMAGES_PER_DIGIT * per_image / 3600
        print(f"train_device_hours_{bb}: {train_h:.1f}")
        print(f"saliency_device_hours_{bb}: {sal_h:.1f}")
        if not bb.startswith("slim_"):
            total += train_h + sal_h
    if total:
        print(f"full_grid_device_hours: {total:.1f}")
        for n in a.workers:
            print(f"full_grid_hours_on_{n}_workers: {total / n:.1f}")


if __name__ == "__main__":
    main()
