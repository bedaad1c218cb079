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
# code (`gsutils.experiments.context_saliency`).
#
# ## What differs from the paper
#
# The paper trains full-size VGG16, MobileNetV2 and ResNet18 U-Nets on 64 px
# images for 50 epochs, for 10 bias digits x 5 textures x 5 seeds. The gpu and
# paper profiles do that (`cfg.backbone_cmp.backbones` are the full smp
# encoders). On a CPU the quick profile compares **reduced variants of the same
# three families** on 32 px images (`slim_vgg16`: VGG16's 2-2-3-3-3 conv
# layout at widths 8-16-32-32-32, `slim_mobilenet_v2`: MobileNetV2 at width
# 0.35, `slim_resnet18`: ResNet18's BasicBlock layout at widths 16-24-40;
# encoder depth 4, bottleneck at 1/16; 129-135 k parameters each), trains
# **N (seeds 0 and 1) and weak bias on digit 2 (textures 0 and 1 x seeds 0 and
# 1), 16 epochs (2,000 steps)** instead of 48, and explains 8 test images of
# the bias digit and 2 of every other digit per weakly biased network. These
# eighteen networks were trained once by the project's own code and ship in
# `checkpoints/quick/` (about 10 MB, with config, training log and checksum;
# restored only when the config matches, retrained otherwise by `python -m
# gsutils.experiments.backbones --profile quick --train-only`). The standard
# deviations of Fig. S8/S9 are over 2 networks for N and 4 for the weak bias
# (two textures x two seeds), and the error bars of Fig. S10 over the two
# textures (one bias digit at quick); the gpu and paper profiles use their
# full grids. The claims
# are judged only when every backbone's N passes the profile's gate (fixed
# before measuring; at quick, N's mean digit IoU >= 0.75): these short-trained
# slim networks on 32 px images do not, so at quick the claims are recorded
# as "not measured", with the measurements shown.

# %% [markdown]
# ## Parameters
#
# The settings used (the paper profile's value in brackets where it differs).
# Measured time of this page at the quick profile on two shared CPU cores, one
# thread, from an empty result store: 81 s (restoring the eighteen shipped
# networks, evaluating them, and the four methods' saliency of the twelve
# weakly biased ones); with the results stored, a re-run takes a few seconds.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.profiles import describe, get_profile

cfg = get_profile(profile, device=device, seed=seed, data_root=data_root or None)

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import display

from gsutils.claims import Ledger
from gsutils.experiments import backbones as bk
from gsutils.experiments import context_claims as cc
from gsutils.experiments import segmentation as seg
from gsutils.experiments.gate_evidence import mixed_pixel_report
from gsutils.plots.backbones import (
    backbone_label,
    plot_cbd_panels,
    plot_cbl_bars,
    plot_iou_mean_std,
    plot_training_curves,
)

t_page = time.perf_counter()
bcfg = bk.backbone_profile(cfg)
print(describe(cfg, "backbone_cmp", "train", "saliency"))
print(f"comparison: backbones {bcfg.grid.backbones}, weak bias on digits {bcfg.grid.bias_digits}, "
      f"textures {bcfg.grid.bias_textures}, seeds {bcfg.grid.seeds}, {bcfg.train.epochs} epochs, "
      f"{bcfg.saliency.images_per_digit} test images of the bias digit per network")
ledger = Ledger(chapter="grid_saliency/05_backbones", profile=cfg)

# %% [markdown]
# ## The networks
#
# Trained (or restored) and evaluated on the unbiased test set by the shared
# S1.2 runner; one row per network.

# %%
# NBVAL_CHECK_OUTPUT
results = bk.train_and_evaluate(cfg, progress=False)
for res in results:
    r = res["run"]
    print(f"{backbone_label(r['backbone']):>18}  {r['bias']['strength']:>4} digit {r['bias'].get('digit')} "
          f"texture {r['bias'].get('texture')} seed {r['seed']}: digit mIoU {res['digit_miou']:.3f}, "
          f"pixel accuracy {res['pixel_acc']:.3f}")

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
print(bk.gate_line(gate))
_ = ledger.check(**cc.gate_claim(gate, "S1.5"))

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
print(miou.round(3).to_string())

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
print(cbd.round(3).to_string())

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
print(cbl.round(3).to_string())

# %% [markdown]
# ## Why the gate fails at the quick profile
#
# Two measurements. First, the training curves of the unbiased networks N,
# set against the pixel accuracy of a network that labels everything
# background. Second, as for the tiny U-Net in S1.2, the accuracy on digit
# pixels the 32 px image shows plainly (*pure*) and on those whose 2x2 render
# block mixes digit and background (*mixed*). A network whose pixel accuracy
# sits near the all-background value, and which misses most of even the pure
# digit pixels, has not yet learned the digits' shapes: its CBD and CBL say
# nothing about a context bias.

# %%
n_runs = [r for r in bk.backbone_runs(bcfg) if r.bias.strength == "none"]
fig = plot_training_curves({f"{backbone_label(r.backbone)}, seed {r.seed}": seg.training_history(bcfg, r)
                            for r in n_runs})
plt.show()

# %% [markdown]
# Read with the numbers below: after the second epoch the six networks sit
# on a plateau whose pixel accuracy is close to the all-background value, and
# the one-cycle schedule has annealed the learning rate to almost zero by the
# last of the 16 epochs (the last epoch changes the loss by less than 0.001).
# The short schedule, chosen to fit the CPU budget, ends while the slim
# networks are still on the plateau of mostly predicting background.
#
# **Would a longer or different recipe pass the gate?** Measured, not
# assumed: a study of the recipe and the architecture on the unbiased
# network's training stream (one thread; mean digit IoU on 300 unbiased test
# images; one learning-rate cycle per trial; `benchmarks/slim_unet_recipes.py`
# re-measures the quick-recipe rows and the rows with both changes, at 1,000
# steps by default and with `--steps 3000` or `6000` for the longer runs):
#
# | network and change (against the quick recipe) | steps | digit mIoU |
# |---|---|---|
# | tiny U-Net of S1.2-S1.4 (reference), quick recipe | 1,000 | 0.281 |
# | slim VGG16, quick recipe | 1,000 | 0.059 |
# | slim VGG16, peak learning rate 1e-2 / constant 3e-3 / Adam without weight decay / batch 16 | 1,000 | 0.067 / 0.073 / 0.059 / 0.018 |
# | slim VGG16, wider decoder (64-32-32-16) / encoder depth 3 / no decoder batch-norm / batch-norm in the encoder | 1,000 | 0.066 / 0.048 / 0.054 / 0.067 |
# | slim VGG16, background class weighted 0.3 / encoder twice as wide | 1,000 | 0.110 / 0.119 |
# | slim VGG16, both (wide encoder, background 0.3) | 3,000 / 6,000 | 0.379 / 0.438 |
# | slim ResNet18, quick recipe / both changes | 1,000 / 3,000 | 0.075 / 0.341 |
# | slim MobileNetV2, quick recipe / width 0.75 and background 0.3 | 1,000 | 0.001 / 0.084 |
#
# Optimiser and schedule, decoder width, depth and normalisation move the
# slim networks by at most 0.02; only a wider encoder and a lighter
# background weight help, and together they flatten out near 0.44 after
# 6,000 steps (+0.003 over the last 1,000), far below the gate of 0.75. The
# slim networks are not slow per step (38-50 ms against the tiny U-Net's
# 80-90 ms, batch 32, one thread, channels last); they learn the 32 px digits
# about five times more slowly per step. Even the tiny U-Net, the best
# learner measured, stops at 0.615 after 6,000 steps (README, "How the quick
# networks were obtained"): about a third of the digit pixels at 32 px are
# mixed with background by the downsampling. So S1.5 is not measured at the
# quick profile for want of networks that carry it, not for want of steps in
# this recipe; its claims are meant for the gpu profile's full-size encoders
# on 64 px images. (The gate was fixed before measuring and is not lowered.)

# %%
# NBVAL_CHECK_OUTPUT
background = float((seg.unbiased_test_set(bcfg).labels == 10).mean())
print(f"labelling every pixel background scores a pixel accuracy of {background:.3f} on the test set")
for r in n_runs:
    hist = seg.training_history(bcfg, r)
    change = hist[-1]["loss"] - hist[-2]["loss"]
    ev = mixed_pixel_report(bcfg, r)
    print(f"{backbone_label(r.backbone):>18} seed {r.seed}: loss {hist[0]['loss']:.3f} (epoch 1) -> {hist[-1]['loss']:.3f} "
          f"(epoch {len(hist)}; change in the last epoch {change:+.3f}), training pixel accuracy "
          f"{hist[-1]['pixel_acc']:.3f}; digit-pixel accuracy {ev['acc_pure_digit']:.3f} pure, "
          f"{ev['acc_mixed_digit']:.3f} mixed")

# %% [markdown]
# ## Claims
#
# Criteria (in `gsutils.experiments.backbones`, fixed before measuring),
# judged only when the gate holds: the bias-digit IoU drops by at least 0.05
# against N's on every backbone; VGG's N has the highest digit mIoU and its
# drop is the smallest; IG's and grid saliency's CBD on the bias digit exceed
# the other digits' by at least 0.05 on every backbone; grid saliency's CBL
# exceeds the best of VG, SG and IG on every backbone; VGG's grid CBL is at
# least MobileNetV2's and ResNet18's.

# %%
_ = cc.record(ledger, bk.backbone_claims(miou, cbd, cbl), gate)
cc.claims_table(ledger)

# %% [markdown]
# ## Summary

# %%
# NBVAL_CHECK_OUTPUT
print(bk.gate_line(gate))
for bb in bcfg.grid.backbones:
    print(f"{backbone_label(bb)}: N digit mIoU {miou.loc[(bb, 'N'), 'miou']:.3f}, bias-digit IoU "
          f"{miou.loc[(bb, 'N'), 'bias_digit_iou']:.3f} (N) vs {miou.loc[(bb, 'weak'), 'bias_digit_iou']:.3f} (weak); "
          f"grid CBD bias digit {cbd.loc[(bb, 'grid'), 'cbd_bias_digit']:.3f} vs others "
          f"{cbd.loc[(bb, 'grid'), 'cbd_other']:.3f}; grid CBL {cbl.loc[(bb, 'grid'), 'cbl']:.3f} "
          f"(chance {cbl.loc[(bb, 'grid'), 'chance']:.3f})")
print(ledger.summary())

# %%
print(f"this page: {time.perf_counter() - t_page:.0f} s wall time")
