# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # S1.5 Backbones: VGG16, MobileNetV2 and ResNet18
#
# ## What is reproduced
#
# Hoyer et al. (2019, S1.5) repeat the bias experiments with three U-Net
# encoders, VGG16, MobileNetV2 and ResNet18, on the *weakly* biased networks
# only. This page reproduces, for each backbone:
#
# * **Fig. S9 a/b**: the per-digit IoU on the unbiased test set, mean (a) and
#   standard deviation (b) over bias textures and seeds, the unbiased network N
#   as the top row and the weakly biased networks below it;
# * **Fig. S8**: the CBD of VG, SG, IG and grid saliency (four methods x three
#   backbones, twelve panels), mean and std over bias textures and seeds;
# * **Fig. S10**: the CBL of every method per backbone, with error bars over
#   bias digits (and textures, seeds);
#
# and the section's claims: every backbone picks up the bias; VGG16 has the
# best base mIoU and the smallest drop; IG and grid saliency detect the bias on
# every backbone; grid saliency's CBL is above VG's, SG's and IG's on every
# backbone; grid saliency localises slightly better with VGG16.
#
# The networks are `segmentation-models-pytorch` U-Nets
# (`gsutils.models.smp_unet`, randomly initialised, `encoder_weights=None`),
# trained with this project's S1.2 runner and explained with the S1.3/S1.4
# code (`gsutils.experiments.grid.context_saliency`).
#
# ## What differs from the paper
#
# The paper trains full-size VGG16, MobileNetV2 and ResNet18 U-Nets on 64 px
# images for 50 epochs, for 10 bias digits x 5 textures x 5 seeds. The gpu and
# paper profiles do that (`cfg.backbone_cmp.backbones` are the full smp
# encoders). On a CPU the quick profile compares **reduced variants of the same
# three families at the paper's 64 px**, about the size of the S1.2 networks
# (their parameter counts are printed below): `small_vgg16` (VGG16's 2-2-3-3-3
# conv layout at widths 16-32-64-128-128), `small_mobilenet_v2_fs`
# (MobileNetV2 at width 0.5) and `small_resnet18_fs` (ResNet18's BasicBlock
# layout at widths 32-64-128-128); encoder depth 5, a 2x2 bottleneck, decoder
# widths 128-64-32-16-16. The two `_fs` variants put one 3x3 convolution of 16
# channels at the input's resolution before the family's own stride-2 stem:
# without it, their N stayed at a mean digit IoU of 0.648 (ResNet18) and 0.430
# (MobileNetV2) after S1.2's 3,000 steps, below the gate, because their first
# skip connection sees the 64 px strokes through one strided convolution.
#
# The recipes differ by family (the gate needs it on a CPU): VGG16 trains with
# the S1.2 networks' quick recipe (3,000 steps, bfloat16 forward pass);
# ResNet18 and MobileNetV2 with the same recipe in float32 for 4,000 and
# 8,000 steps, about a third more than the cycles at which
# `benchmarks/s1_network_study.py` saw them reach 0.75 (3,000 and 6,000
# steps), so that they pass with some margin. Differences in base mIoU between
# the families are therefore not only the encoder's. One network deviates
# from its family: VGG16's texture-1 network trained its 3,000 steps in
# float32, because the CPU at hand emulates bfloat16 (the appendix says why).
# The comparison covers **N and weak bias on digit 2 with textures 0 and 1
# (one seed)**, and each weakly biased network explains 8 test images of the
# bias digit and 2 of every other digit. The nine networks were trained once
# by the project's own code and ship in `checkpoints/quick/` (with config,
# training log and checksum;
# `python -m gsutils shipped --profile quick --grid backbones --retrain`
# retrains them). The spreads of Fig. S9 and S10 are over the two textures
# (N, one network per family, has none). The claims are judged
# only when every backbone's N passes the gate fixed before measuring (at
# quick, N's mean digit IoU >= 0.75); the appendix *How the networks were
# obtained* has the study's curves.

# %% [markdown]
# ## Parameters
#
# The settings used (the paper profile's value in brackets where it differs).
# The time this page took is printed at its end.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.claims import open_chapter
from gsutils.profiles import describe

cfg, ledger = open_chapter("grid_saliency/05_backbones",
                           profile=profile, device=device, seed=seed, data_root=data_root)

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from gsutils.experiments.grid import backbones as bk
from gsutils.experiments.grid import context_claims as cc
from gsutils.experiments.grid import segmentation as seg
from gsutils.plots.backbones import (
    backbone_label,
    plot_cbd_panels,
    plot_cbl_bars,
    plot_iou_mean_std,
    plot_training_curves,
)
from gsutils.plots.tables import html_table

t_page = time.perf_counter()
bcfg = bk.backbone_profile(cfg)
print(describe(cfg, "backbone_cmp", "train", "saliency"))
print(f"comparison: backbones {bcfg.grid.backbones}, weak bias on digits {bcfg.grid.bias_digits}, "
      f"textures {bcfg.grid.bias_textures}, seeds {bcfg.grid.seeds}, "
      f"{bcfg.saliency.images_per_digit} test images of the bias digit per network")
for line in bk.recipe_lines(cfg):  # a network with a recipe of its own is listed after its family
    print("  " + line)

# %% [markdown]
# ## The networks
#
# Trained (or restored) and evaluated on the unbiased test set by the shared
# S1.2 runner; one row per network.

# %%
# NBVAL_CHECK_OUTPUT
results = bk.train_and_evaluate(cfg, progress=False)
networks = pd.DataFrame([{
    "backbone": backbone_label(res.run.backbone),
    "network": ("N" if res.run.bias.strength == "none" else
                f"{res.run.bias.strength} bias, digit {res.run.bias.digit}, texture {res.run.bias.texture}"),
    "seed": res.run.seed, "digit mIoU": res.digit_miou, "pixel accuracy": res.pixel_acc,
} for res in results])
display(html_table(networks, digits=3, index=False, caption="N and the weakly biased networks on unbiased test data"))

# %% [markdown]
# ## The gate
#
# Fixed before measuring: every backbone's unbiased network N must reach a
# mean digit IoU of `cfg.train.gate_digit_miou` on unbiased test data;
# otherwise the claims below are "not measured".

# %%
# NBVAL_CHECK_OUTPUT
miou = bk.miou_table(results)
gate = bk.backbone_gate(cfg, miou)
print(gate.line())

# %% [markdown]
# ## Fig. S9 a/b: IoU on unbiased test data per backbone
#
# Rows: N, then the weakly biased networks of each bias digit (mean / std over
# textures and seeds); the bias digit's cell framed in red. The table gives the
# mean digit IoU and the bias digit's IoU per backbone (for N: on the digits
# the other networks are biased on).

# %%
fig = plot_iou_mean_std(results, bcfg.grid.backbones)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(miou, digits=3))

# %% [markdown]
# ## Fig. S8: CBD per method and backbone
#
# Each weakly biased network explains its biased test set (the first test
# images of its bias digit, and of every other digit); CBD is the salient share
# of the context. A method that detects the bias is high on the bias digit
# (red frame) and low elsewhere.

# %%
per_backbone = bk.saliency_results(cfg, progress=False)
fig = plot_cbd_panels(per_backbone)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
cbd = bk.saliency_table(per_backbone)
display(html_table(cbd, digits=3))

# %% [markdown]
# ## Fig. S10: CBL per backbone
#
# The share of the context's saliency on the biased part, over the biased
# images of the bias digit (empty maps scored as chance; the empty-map rate and
# the mean over non-empty maps are in the table).

# %%
cbl = bk.cbl_table(per_backbone)
fig = plot_cbl_bars(cbl)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(cbl, digits=3))

# %% [markdown]
# ## The networks' training
#
# The training curves of the three unbiased networks N (loss and pixel
# accuracy per epoch, against the pixel accuracy of labelling everything
# background), and each network's size.

# %%
n_runs = [r for r in bk.backbone_runs(bcfg) if r.bias.strength == "none"]
fig = plot_training_curves({backbone_label(r.backbone): seg.training_history(bk.run_profile(cfg, r), r)
                            for r in n_runs})
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
from gsutils.models.unet import build_unet

background = float((seg.unbiased_test_set(bcfg).labels == 10).mean())
print(f"labelling every pixel background scores a pixel accuracy of {background:.3f} on the test set")
for r in n_runs:
    hist = seg.training_history(bk.run_profile(cfg, r), r)
    n_params = sum(p.numel() for p in build_unet(r.backbone, seed=0).parameters())
    print(f"{backbone_label(r.backbone):>18}: {n_params / 1e6:.2f}M parameters; loss {hist[0]['loss']:.3f} "
          f"(epoch 1) -> {hist[-1]['loss']:.3f} (epoch {len(hist)}), training pixel accuracy "
          f"{hist[-1]['pixel_acc']:.3f}")

# %% [markdown]
# ## Claims
#
# Criteria (in `gsutils.experiments.grid.backbones`, fixed before measuring),
# judged only when the gate holds: the bias-digit IoU drops by at least 0.05
# against N's on every backbone; VGG's N has the highest digit mIoU and its
# drop is the smallest; IG's and grid saliency's CBD on the bias digit exceed
# the other digits' by at least 0.05 on every backbone; grid saliency's CBL
# exceeds the best of VG, SG and IG on every backbone; VGG's grid CBL is at
# least MobileNetV2's and ResNet18's.
#
# How to read the saliency rows: a method can only detect a bias that the
# network uses. Where a weakly biased network's bias-digit IoU hardly drops
# (the Fig. S9 row), the network predicts the bias digit from the digit itself,
# grid saliency correctly finds no context it needs (its maps are empty, the
# empty-map rate of the Fig. S10 table), and the detection and localisation
# claims fail on that backbone for want of a bias, not for a fault of the
# method. The first claim's row below gives each backbone's drop.

# %%
_ = bk.record_backbones(ledger, gate, miou, cbd, cbl)
from gsutils.report import chapter_table

chapter_table(ledger)

# %% [markdown]
# ## Summary

# %%
# NBVAL_CHECK_OUTPUT
print(gate.line())
for bb in bcfg.grid.backbones:
    print(f"{backbone_label(bb)}: N digit mIoU {miou.loc[(bb, 'N'), 'miou']:.3f}, bias-digit IoU "
          f"{miou.loc[(bb, 'N'), 'bias_digit_iou']:.3f} (N) vs {miou.loc[(bb, 'weak'), 'bias_digit_iou']:.3f} (weak); "
          f"grid CBD bias digit {cbd.loc[(bb, 'grid'), 'cbd_bias_digit']:.3f} vs others "
          f"{cbd.loc[(bb, 'grid'), 'cbd_other']:.3f}; grid CBL {cbl.loc[(bb, 'grid'), 'cbl']:.3f} "
          f"(chance {cbl.loc[(bb, 'grid'), 'chance']:.3f})")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# the verdict lines (the Summary table below shows them to a reader)
print(ledger.summary())

# %%
print(f"this page: {time.perf_counter() - t_page:.0f} s wall time")
