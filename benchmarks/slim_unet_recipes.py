"""How fast the quick profile's U-Nets learn the 32 px toy data, per step and per second.

The S1.5 chapter's slim smp U-Nets stay below the gate at the quick profile
(N's mean digit IoU >= 0.75). This script re-measures why, on one thread, with
the unbiased network's training stream and 300 unbiased test images:

* ``step_ms_<backbone>``: one training step (batch 32, forward, backward and
  AdamW, channels last), median of 10 after a warm-up step;
* ``digit_miou_<trial>_<backbone>_step<k>``: mean digit IoU after ``k`` steps
  of one learning-rate cycle over ``--steps`` steps, for the trials

  - ``quick``: the quick profile's recipe (AdamW, peak 3e-3, batch 32, plain
    cross-entropy) on the networks as the library builds them (``tiny`` and
    the three ``slim_*``);
  - ``wide_bg``: the same, with the slim encoders twice as wide (VGG
    16-32-64-64-64, ResNet 32-48-80-160, MobileNetV2 at width 0.75) and the
    background class weighted 0.3 in the cross-entropy, the best change of a
    wider study (see the S1.5 chapter);

* ``miou_vs_tiny_<trial>_<backbone>``: the final digit IoU over the tiny
  U-Net's in the same run.

Usage: ``python benchmarks/slim_unet_recipes.py [--steps 1000] [--eval-every 250]
[--trials quick wide_bg] [--backbones tiny slim_vgg16 slim_mobilenet_v2 slim_resnet18]``
(7 min 20 s with the defaults on one thread of this project's 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

BACKGROUND = 10
BACKBONES = ("tiny", "slim_vgg16", "slim_mobilenet_v2", "slim_resnet18")


def wide_encoder(backbone: str) -> str:
    """Register (once) the slim encoder of ``backbone`` at twice its width; its smp name."""
    from segmentation_models_pytorch.encoders import encoders
    from torchvision.models._utils import _make_divisible

    from gsutils.models import smp_unet as S

    S.smp_unet_class()  # registers the slim encoders
    base = S.SPECS[backbone].encoder
    name = base + "_wide"
    if name in encoders:
        return name
    entry = dict(encoders[base])
    params = dict(entry["params"])
    if backbone == "slim_vgg16":
        config = [c if c == "M" else 2 * c for c in S.SLIM_VGG_CONFIG]
        stages = [c for i, c in enumerate(config[:-1]) if config[i + 1] == "M"]
        params.update(config=config, out_channels=[*stages, stages[-1]])
    elif backbone == "slim_resnet18":
        w = (32, 48, 80, 160)
        params.update(widths=w, out_channels=[3, w[0], w[0], w[1], w[2], w[3]])
    else:
        m = [_make_divisible(c * 0.75, 8) for c in (16, 24, 32, 96, 320)]
        params.update(width_mult=0.75, out_channels=[3, *m[:4], 1280])
    entry["params"] = params
    encoders[name] = entry
    return name


def build(backbone: str, trial: str) -> nn.Module:
    from gsutils.experiments.common.training import mix_seed
    from gsutils.models.unet import build_unet

    seed = mix_seed(0, 1)  # the initialisation of the quick profile's N network (seed 0)
    torch.manual_seed(seed)
    if trial == "quick" or backbone == "tiny":
        return build_unet(backbone, 11, 1, seed=seed)
    import segmentation_models_pytorch as smp

    from gsutils.models.smp_unet import SPECS

    spec = SPECS[backbone]
    net = smp.Unet(encoder_name=wide_encoder(backbone), encoder_depth=spec.depth, encoder_weights=None,
                   decoder_channels=spec.decoder, in_channels=1, classes=11)
    for m in net.modules():
        if hasattr(m, "inplace") and isinstance(m.inplace, bool):
            m.inplace = False
    return net


def digit_miou(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(x[i:i + 100].contiguous(memory_format=torch.channels_last)).argmax(1)
                          for i in range(0, len(x), 100)])
    net.train()
    cm = torch.bincount(y.flatten() * 11 + pred.flatten(), minlength=121).reshape(11, 11).double()
    tp = cm.diag()
    return float((tp / (cm.sum(0) + cm.sum(1) - tp))[:10].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--trials", nargs="+", default=["quick", "wide_bg"], choices=("quick", "wide_bg"))
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    a = ap.parse_args(argv)
    if a.steps < 1 or a.eval_every < 1:
        ap.error("--steps and --eval-every must be positive")
    torch.set_num_threads(1)

    from gsutils.data.toy import make_toy_dataset
    from gsutils.experiments.grid import segmentation as seg
    from gsutils.experiments.grid.backbones import backbone_profile, backbone_runs
    from gsutils.profiles import get_profile

    cfg = backbone_profile(get_profile("quick", device="cpu"))
    run = next(r for r in backbone_runs(cfg) if r.bias.strength == "none")
    toy = seg.run_toy_config(cfg, run.bias, run.seed)
    test = seg.unbiased_test_set(cfg)
    xt = torch.from_numpy(test.images[:300]).float()
    yt = torch.from_numpy(test.labels[:300]).long()
    epochs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def epoch_data(e: int) -> tuple[torch.Tensor, torch.Tensor]:
        if e not in epochs:
            d = make_toy_dataset(toy, "train", cfg.toy.n_train, epoch=e)
            epochs[e] = (torch.from_numpy(d.images).float(), torch.from_numpy(d.labels).long())
        return epochs[e]

    final: dict[tuple[str, str], float] = {}
    for trial in a.trials:
        for bb in a.backbones:
            if trial == "wide_bg" and bb == "tiny":
                continue
            net = build(bb, trial).to(memory_format=torch.channels_last).train()
            # the quick recipe: AdamW (weight decay 1e-4), one cycle peaking at 3e-3 with 15 % warm-up
            opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, pct_start=0.15, total_steps=a.steps)
            weight = torch.ones(11)
            if trial == "wide_bg":
                weight[BACKGROUND] = 0.3
            loss_fn = nn.CrossEntropyLoss(weight=weight)
            step, epoch, times = 0, 0, []
            while step < a.steps:
                x, y = epoch_data(epoch)
                epoch += 1
                for i in range(0, len(x) - 31, 32):
                    t = time.perf_counter()
                    loss = loss_fn(net(x[i:i + 32].contiguous(memory_format=torch.channels_last)), y[i:i + 32])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    times.append(time.perf_counter() - t)
                    step += 1
                    if step % a.eval_every == 0 or step == a.steps:
                        miou = digit_miou(net, xt, yt)
                        print(f"digit_miou_{trial}_{bb}_step{step}: {miou:.4f}", flush=True)
                    if step == a.steps:
                        break
            if trial == "quick":
                print(f"step_ms_{bb}: {1000 * statistics.median(times[1:11]):.1f}", flush=True)
            final[trial, bb] = miou
    for (trial, bb), v in final.items():
        if ("quick", "tiny") in final and bb != "tiny":
            print(f"miou_vs_tiny_{trial}_{bb}: {v / max(final['quick', 'tiny'], 1e-9):.3f}")
    print(f"(on {torch.get_num_threads()} thread; {a.steps} steps per trial)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
