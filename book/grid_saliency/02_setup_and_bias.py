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
# # S1.2 Setup: segmentation networks that pick up the bias
#
# ## What is reproduced
#
# Hoyer et al. (2019, S1.2) train U-Net segmentation networks on the textured
# MNIST data of the previous chapter: one network on unbiased data (called
# **N**), and one per bias digit, bias texture and dataset seed on strongly and
# on weakly biased data. Tested on *unbiased* data, a network that relied on
# the bias texture loses IoU on its bias digit: the poster reads about 0.96 for
# N, 0.74 under weak bias and 0.14 under strong bias, while the other digits
# stay high (Fig. S4a for strong and Fig. S5a for weak bias; Fig. S9 compares
# the VGG16, MobileNetV2 and ResNet18 encoders). These networks are the
# subjects of the saliency experiments in the next two chapters.
#
# This page trains (or, at the quick profile, loads the shipped) grid of networks of the S1.2 recipe
# (`gsutils.experiments.grid.segmentation`), measures per-class IoU on the unbiased
# test set, redraws the matrices of Fig. S4a and S5a and the comparison of
# Fig. S9, and records the claims in the ledger.
#
# ## What differs from the paper
#
# The quick profile trains small networks on a CPU: a five-level U-Net of 1.3M
# parameters (`"small"`) on the paper's 64 px images, AdamW with one
# learning-rate cycle instead of RMSprop, 3,000 steps with a bfloat16 forward
# pass, and a grid of one bias digit (2) with three of the five bias textures
# (0-2) and one seed; the seven networks ship with the project. The section on the recipe below
# gives each change and the measurement behind it. The gpu and paper profiles
# keep the paper's recipe.

# %% [markdown]
# ## Parameters
#
# The profile's settings (a value the paper sets differently shows the paper's
# beside it). At the quick profile this page restores the eleven shipped
# networks and evaluates them; the time it took is printed below.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.claims import open_chapter
from gsutils.profiles import describe

cfg, ledger = open_chapter("grid_saliency/02_setup_and_bias",
                           profile=profile, device=device, seed=seed, data_root=data_root)
print(describe(cfg, "toy", "train", "grid"))

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import display

from gsutils.experiments.grid import bias_results as br
from gsutils.experiments.grid import segmentation as seg
from gsutils.experiments.grid import shipped_unets
from gsutils.plots.tables import html_table


# %% [markdown]
# ## The recipe (S1.2)
#
# A U-Net (`gsutils.models.unet.build_unet`) with a skip connection at every
# resolution, trained with pixel-wise cross entropy over 11 classes (ten digits
# and background) and RMSprop with the Keras defaults of the authors' stack
# (rho 0.9, epsilon $10^{-7}$), batch size 100, learning rate $10^{-3}$ and then
# $10^{-4}$ for the last fifth of the epochs. The gpu and paper profiles keep
# that recipe. Training data are streamed: every epoch is a fresh draw of the
# generator (previous chapter).
#
# **What differs at the quick profile, and why.** On one CPU thread the
# paper's encoders and schedule do not learn the task within any book budget.
# The quick profile therefore uses
#
# - a small VGG-style encoder (`"small"`: two 3x3 convolutions with batch norm
#   per resolution, 16-32-64-128-128 channels at five resolutions, and a global
#   context block that adds an image-wide summary to the bottleneck), on the
#   paper's 64×64 images;
# - AdamW, batch 32 and one learning-rate cycle peaking at $3\cdot10^{-3}$,
#   which learned faster per step than RMSprop in our measurements;
# - 24 epochs of 4,000 fresh images (3,000 steps) per network, the forward
#   pass under bfloat16 autocast (weights, optimiser and evaluation stay
#   float32), which made a training step about 1.9 times faster than float32
#   on the AMD EPYC that trained most of them and learned as well (the
#   networks of textures 3 and 4 were trained on an Intel Xeon with AMX; each
#   network's machine is recorded with it).
#
# Why 64 px: a study (`python benchmarks/s1_network_study.py`, in the appendix
# on how the networks were obtained) trained the unbiased network with this
# recipe at 32 px (rendered at 64 and area-downsampled, as earlier versions of
# this book did) and at 64 px. At 32 px a third of the digit's pixels mix digit
# and background, and no U-Net we tried reached the gate within a CPU budget;
# at 64 px this one does.
#
# Eleven such networks (N, and strong and weak bias on digit 2 with each of the
# five bias textures) take over an hour on two cores, more than a
# book build may spend. **The quick networks are therefore shipped**: trained
# by this project's own code with exactly this recipe and committed under
# `checkpoints/quick/<config hash>/` with their config, training log and
# sha256 (`gsutils.experiments.common.shipped`). They are loaded only when their
# config equals the run's; a unit test re-runs each network's first training
# steps in float64 from the same initialisation and compares them with the
# float64 trace logged when it was trained (`gsutils.experiments.common.provenance`).
# To retrain them instead: `python -m gsutils shipped --profile quick
# --retrain` (then `--export` to replace the shipped ones). The table
# lists both recipes.

# %%
display(br.recipe_table(cfg))

# %% [markdown]
# The networks are randomly initialised from their dataset seed, trained
# deterministically, checkpointed after every epoch and cached under a hash of
# their configuration, so re-running this page loads them. The profile says how
# the grid is trained (`cfg.train.executor`: in this process, or on a local Dask
# cluster of one-thread workers); `python -m gsutils.experiments.grid.segmentation
# --profile gpu --executor dask --address <scheduler>` runs it on a cluster.

# %%
runs = seg.grid_runs(cfg, cfg.grid.backbones)
print(f"{len(runs)} networks: " + ", ".join(r.label for r in runs))
t_start = time.perf_counter()
results = seg.run_grid(cfg, runs, executor=cfg.train.executor, n_workers=cfg.train.workers,
                       progress=True)
wall = time.perf_counter() - t_start

# %%
summary = br.training_summary(cfg, runs)
display(html_table(summary.assign(seconds=summary["seconds"].round().astype(int)), digits=3))
print(f"training: {summary['seconds'].sum():.0f} s summed over the {len(runs)} networks\n"
      f"this run of the grid (training or loading from the cache, then evaluation): "
      f"{wall:.0f} s wall time\n(executor {cfg.train.executor!r}, "
      f"{cfg.train.workers} one-thread worker processes)")

# %%
manifest = shipped_unets.manifest(cfg, runs)
print(f"{sum(bool(m['shipped']) for m in manifest)} of {len(manifest)} networks are shipped under "
      "checkpoints/quick/ (each folder's key, sha256 and size: python -m gsutils shipped --profile quick)")

# %% [markdown]
# ## The gate
#
# Fixed before measuring: the saliency claims of S1.3 and S1.4 are judged only
# when the unbiased network's mean digit IoU on the unbiased test set is at
# least the profile's gate (quick 0.75; gpu and paper 0.90). Below it, the
# next chapters record them as "not measured" and show these numbers.

# %%
# NBVAL_CHECK_OUTPUT
frame = br.results_frame(results)
gate = br.network_gate(frame, cfg.train.gate_digit_miou, cfg.train.backbone)
print(gate.line())

# %% [markdown]
# ## IoU on the unbiased test set
#
# Per-class IoU, $\mathrm{TP}/(\mathrm{TP}+\mathrm{FP}+\mathrm{FN})$ summed over
# all pixels of the unbiased test set, and mIoU over the 11 classes, of the
# unbiased networks (mean over dataset seeds).

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(br.unbiased_iou_table(frame), digits=2))

# %% [markdown]
# ## Fig. S4a and S5a: the bias digit loses IoU
#
# Rows: the network's bias digit, with N, the unbiased network, on top;
# columns: the test digit; left: IoU on unbiased test data (mean over bias
# textures and seeds), right: the difference to N's row. Under a strong bias the
# cell on the diagonal (test digit = bias digit) should be far below N's; under
# weak bias less so; off the diagonal the rows should match N.

# %%
for backbone in cfg.grid.backbones:
    fig = br.plot_iou_matrices(frame, backbone)
    plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for backbone in cfg.grid.backbones:
    for strength in cfg.grid.strengths:
        iou, drop = br.iou_matrix(frame, strength, backbone)
        display(html_table(iou, digits=2, caption=f"{backbone}, {strength} bias: IoU on unbiased test data"))

# %% [markdown]
# ## Per bias texture
#
# IoU of the bias digit on unbiased test data for each of the profile's bias
# textures (means over bias digits and seeds; N's value repeated).

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(br.texture_table(frame, cfg.train.backbone), digits=2))

# %% [markdown]
# ## Fig. S9: the encoders compared (S1.5)
#
# IoU of the bias digit on unbiased test data, mean and standard deviation over
# bias digits, textures and seeds, for each encoder the profile trains. The
# paper compares VGG16, MobileNetV2 and ResNet18; the quick profile trains only
# its small encoder, so this figure has a single group there and the S1.5 claim
# is recorded as not measured.

# %%
fig = br.plot_backbone_comparison(frame)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(br.backbone_summary(frame), digits=2))

# %% [markdown]
# ## Claims
#
# Criteria, fixed before measuring: an absolute value counts as reproduced when
# it lies within $\pm 0.05$ of the value read off the poster; the order counts
# when $\mathrm{IoU}_\text{strong} + 0.05 \le \mathrm{IoU}_\text{weak}$ and
# $\mathrm{IoU}_\text{weak} + 0.05 \le \mathrm{IoU}_N$ (means over bias digits,
# textures and seeds); "the other digits stay high" when N's mean IoU on them is
# at least 0.8 and the biased networks are at most 0.05 below it. The drop under
# strong bias alone (Fig. S4a) is also recorded, with the same margin:
# $\mathrm{IoU}_\text{strong} + 0.05 \le \mathrm{IoU}_N$. When the unbiased
# network is below the gate, the statement printed below says so, and absolute
# values that miss the poster's are "not reproduced at this profile" rather than
# refuted.

# %%
backbone = cfg.train.backbone
_ = br.record_bias(ledger, frame, gate, backbone)

# %%
# NBVAL_CHECK_OUTPUT
print(br.bias_effect_statement(frame, backbone, cfg.train.gate_digit_miou))
print()

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# the verdict lines (the Summary table below shows them to a reader)
print(ledger.summary())

# %% [markdown]
# ## Summary
#
# Every claim of this page in one table: the paper's number, ours, the
# criterion fixed before measuring and the verdict.

# %%
from gsutils.report import chapter_table

chapter_table(ledger)
