"""Where the shipped S1.5 networks' N errs: finding the digit's pixels, or naming the digit.

For each backbone's unbiased network N of the quick profile (restored from
``checkpoints/quick``), on the first 300 unbiased test images:

- ``foreground_iou``: IoU of "any digit" (predicted vs true digit pixels);
- ``class_accuracy``: of the pixels both call digit, the share given the right digit.

A network whose errors are at the strokes' edges has a low foreground IoU and a
high class accuracy. Usage: ``python benchmarks/s15_error_split.py`` (about a
minute on one thread; prints ``name: value`` lines).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from gsutils.experiments.grid.backbones import backbone_profile, backbone_runs  # noqa: E402
from gsutils.experiments.grid.segmentation import predict, train_or_load, unbiased_test_set  # noqa: E402
from gsutils.profiles import get_profile  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    profile = backbone_profile(get_profile("quick"))
    test = unbiased_test_set(profile)
    x = torch.as_tensor(test.images[:300])
    y = torch.as_tensor(test.labels[:300]).long()
    background = int(y.max())
    for run in backbone_runs(profile):
        if run.bias.strength != "none":
            continue
        pred = predict(train_or_load(profile, run).eval(), x).long()
        true_fg, pred_fg = y != background, pred != background
        both = true_fg & pred_fg
        print(f"{run.backbone}_foreground_iou: {both.sum().item() / (true_fg | pred_fg).sum().item():.3f}")
        print(f"{run.backbone}_class_accuracy: {(pred[both] == y[both]).float().mean().item():.3f}")


if __name__ == "__main__":
    main()
