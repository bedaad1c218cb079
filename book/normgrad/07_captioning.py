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
# # F. Explaining an image captioner (Fig. 6)
#
# ## What is reproduced
#
# The last section of the supplement (Rebuffi et al., 2020) points selective
# NormGrad at a model that is not a classifier: an image captioner in the
# style of neuraltalk2, a ResNet101 encoder whose globally pooled features
# start an LSTM language model. The backward signal is the log-probability of
# the caption the model generated (or of one of its words). Fig. 6 shows, per
# image, selective NormGrad, $\lVert\max(0, x \odot g)\rVert$ over channels,
# at three layers (the input of the final global average pooling, and the
# ReLUs after the downsampling shortcuts of the third and fourth macro
# blocks) and their product combination with linear weights (section C). The
# paper's reading of the figure: *each layer alone highlights a large part of
# the image; the combination is sharper*.
#
# This page trains (or restores) such a captioner, measures its captions (BLEU-4, ROUGE-L,
# CIDEr), draws Fig. 6 for its test captions, and turns the paper's reading
# into measurements fixed before running them: the share of each map's mass
# on the objects the caption names, the map's normalised entropy, and the
# share of the image above half of the map's maximum.
#
# ## What differs from the paper
#
# * **Data.** MS COCO cannot be shipped. The captioned images are the
#   project's multi-digit scenes with captions generated from their objects
#   and relations ("a small three left of a large seven"), written in the COCO
#   captions format and read back by the reader that reads real COCO captions
#   (with a data root and `captioning.source = "coco"`). Because the scenes
#   come with object masks, the sharpness can be measured against the objects
#   the caption names, which COCO captions do not provide.
# * **Encoder.** neuraltalk2 starts from an ImageNet classifier; no ImageNet
#   weights can be had here, and an encoder trained from scratch together
#   with the decoder did not learn to name the digits within a CPU budget
#   (measured with a reduced ResNet101 of 1, 1, 2, 2 blocks: the F1 of the
#   digit words of its test captions was 0.15 after 5 of 10 scheduled epochs
#   of 8,000 scenes, and 0.22 after 6 of 8 epochs of 6,000 with the image fed
#   at every step and an auxiliary word loss; both runs were stopped there). So the encoder starts, as in neuraltalk2, from a
#   classifier: section A's ResNet50 trained on the same kind of scenes, which
#   is ResNet101's module tree with 3, 4, 6, 3 Bottleneck blocks instead of 3,
#   4, 23, 3 (the explained layers have the same names), at 1/8 of the widths
#   and with `layer4` at stride 1. At the quick profile it is frozen and only
#   the LSTM is trained, on its pooled features (about two minutes on one
#   CPU thread, generating the scenes included); the paper profile keeps the
#   full ResNet101 and trains it.
# * **Maps.** At 112 px the explained layers are 7x7 grids (`layer4` at
#   stride 1 keeps `layer3`'s resolution), upsampled bilinearly; at the
#   paper's 224 px they are 14x14 and 7x7.
# * **Scores.** METEOR and SPICE need Java (and SPICE a download) and are not
#   computed; captions are tokenised by lower-casing and dropping punctuation
#   instead of the PTB tokenizer (the same for generated captions).

# %% [markdown]
# ## Parameters
#
# The profile's settings (a value the paper profile sets differently shows it
# beside). The page restores the captioner that ships in
# `checkpoints/quick/` (retrained, it equals the shipped one bit for bit); the
# time this run of the page took is printed at the end. The shipped
# captioner is used only when its config, which includes the key of the
# section-A classifier it starts from, equals this run's; retrain it with
# `python -m gsutils captioning --profile quick --retrain`.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
import time

from IPython.display import display

from gsutils.claims import open_chapter
from gsutils.plots.tables import html_table
from gsutils.profiles import describe

t_page = time.perf_counter()
cfg, ledger = open_chapter("normgrad/07_captioning",
                           profile=profile, device=device, seed=seed, data_root=data_root)
print(describe(cfg, "captioning"))

# %%
from dataclasses import asdict

import matplotlib.pyplot as plt
import pandas as pd

from gsutils.experiments.normgrad.caption_claims import captioner_gate, record_captioning
from gsutils.experiments.normgrad.caption_saliency import explain_captions, layer_grids, map_names, sharpness_summary
from gsutils.experiments.normgrad.captioning import (
    evaluate_captioner,
    load_split,
    shipped_network,
    train_or_load_captioner,
)
from gsutils.models.captioner import EXPLAINED_LAYERS
from gsutils.plots.captioning import (
    plot_caption_examples,
    plot_caption_training,
    plot_fig6,
    plot_sharpness,
)


# %% [markdown]
# ## The captioned images
#
# Each scene holds one to three MNIST digits drawn with textures over a
# textured background. Its captions list the digits from left to right as
# "a ⟨small|large⟩ ⟨digit⟩" (large: a visible box at least 30 % of the side
# tall) joined by "left of", "above" or "below"; a second reference reads
# them from right to left. The captioner is trained on the first reference;
# the scores compare its captions with both.

# %%
test = load_split(cfg, "test")
plot_caption_examples(test.images.numpy(), test.captions, n=4)
plt.show()

# %% [markdown]
# ## The captioner and the gate
#
# Teacher-forced cross-entropy on the next word, Adam with a cosine decay;
# the encoder (section A's classifier) frozen at the quick profile.
# The gate, fixed before measuring: the saliency claims below are judged only
# when the captioner names the scene's digits, i.e. when the micro-averaged F1
# of the digit words of its greedy test captions against the scene's digits
# (as multisets) reaches `captioning.gate_mention_f1`.

# %%
model, vocab, history = train_or_load_captioner(cfg, progress=False)
ship = shipped_network(cfg).path
print(f"shipped captioner for this config: checkpoints/{ship.parent.name}/{ship.name}" if ship.is_dir()
      else "no captioner ships for this config: trained by this code")
print(f"{sum(p.numel() for p in model.parameters()):,} parameters, vocabulary of {len(vocab)} words")
plot_caption_training(history)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
ev = evaluate_captioner(cfg)
print(", ".join(f"{k} {v:.3f}" for k, v in ev.scores.items()) + f" on {ev.n} test images")
m = ev.mentions
print(f"digit mentions: precision {m.precision:.3f}, recall {m.recall:.3f}, F1 {m.f1:.3f}, "
      f"all digits right in {100 * m.exact:.1f} % of the captions")
gate = captioner_gate(ev)
print(gate.line())

# %%
display(html_table(pd.DataFrame({"generated caption": ev.captions[:8],
                                 "reference captions": [" / ".join(r) for r in ev.references[:8]]}),
                   index=False, caption="the first eight test images"))

# %% [markdown]
# ## Fig. 6: selective NormGrad at three layers and their combination
#
# The explained score is $\log p(w_1 \dots w_T\,\langle\text{end}\rangle \mid
# \text{image})$ of the generated caption. The maps are taken at the three
# layers below and combined by the weighted geometric mean of the min-max
# normalised maps (section C's product combination) with linear weights 1, 2,
# 3 from the shallowest to the deepest layer. The white outline marks the
# objects the caption names.

# %%
# NBVAL_CHECK_OUTPUT
# the explained layers (a module's last call is used: the Bottleneck's ReLU
# after the addition of the downsampling shortcut) and their grids
for name, grid in layer_grids(model, cfg.captioning.image_size).items():
    print(f"{name}: {grid[0]}x{grid[1]}")

# %%
ex = explain_captions(cfg, progress=False)
names = map_names()
rows = list(range(cfg.captioning.n_figure))
plot_fig6(ex, ev.captions, names, rows)
plt.show()

# %% [markdown]
# ### One word of the caption
#
# The same maps when the score is the log-probability of the caption's first
# digit word alone (given the words before it).

# %%
has_word = [i for i in range(ex.n_images) if ex.word_pos[i] >= 0][:cfg.captioning.n_figure]
words = [ev.captions[i].split()[int(ex.word_pos[i])] for i in has_word]
if has_word:
    plot_fig6(ex, ev.captions, names, has_word, maps=ex.word_maps, words=words)
    plt.show()
else:
    print("no explained caption holds a digit word")

# %% [markdown]
# ## How sharp are the maps?
#
# Over the explained test captions, per map: the share of its mass on the
# objects the caption names (the visible pixels of the scene's digits whose
# word the caption holds), its normalised entropy (1: uniform), and the share
# of the image at or above half its maximum. The dashed line is the named
# objects' share of the image, what a map blind to the objects would put on
# them.

# %%
summary = sharpness_summary(ex)
plot_sharpness(summary, names)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
table = pd.DataFrame({n: asdict(summary.maps[n]) for n in names}).T
table.columns = ["mass on named objects", "normalised entropy", "area >= half max", "word map mass on its digit"]
display(html_table(table, digits=3))
print(f"named objects cover {100 * summary.named_area:.1f} % of the image "
      f"({summary.n_named} captions that name a digit present in the scene)")

# %% [markdown]
# ### A finer layer in the product
#
# In the paper's ResNet101 at 224 px, `layer3` is a finer grid than
# `layer4`; here all three explained layers are 7x7. To see what a finer
# layer changes, the same measurements with `layer2.0.relu` (the ReLU after
# the downsampling shortcut of the second macro block, a 14x14 grid) added as
# the shallowest layer of the product (linear weights 1, 2, 3, 4). This is an
# extra measurement, not one of the paper's settings, and no claim is judged
# on it.

# %%
# NBVAL_CHECK_OUTPUT
finer = ("encoder.layer2.0.relu",) + tuple(EXPLAINED_LAYERS)
print(", ".join(f"{n}: {g[0]}x{g[1]}" for n, g in layer_grids(model, cfg.captioning.image_size, finer).items()))
ex4 = explain_captions(cfg, layers=finer, progress=False)
summary4 = sharpness_summary(ex4, finer)
table4 = pd.DataFrame({n: asdict(summary4.maps[n]) for n in map_names(finer)}).T
table4.columns = table.columns
display(html_table(table4, digits=3))

# %% [markdown]
# ## Claims
#
# The criteria were fixed before measuring. *Layers broad*: at every single
# layer the mean area above half the map's maximum exceeds the mean area of
# the named objects (the high region spills beyond them). *Sharper*: for every
# single layer, the 95 % bootstrap interval of the paired difference (over
# captions) of the normalised entropy, layer minus combination, lies above 0.
# *On the objects*: for every single layer, the interval of the paired
# difference of the mass on the named objects, combination minus layer, lies
# above 0. Below the gate, they are recorded as not measured, with the numbers.

# %%
_ = record_captioning(ledger, ex, summary, names, gate)

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# the verdict lines (the Summary table below shows them to a reader)
print(ledger.summary())

# %%
from gsutils.report import chapter_table

chapter_table(ledger)

# %% [markdown]
# How to read these rows (numbers of the quick profile). The maps of Fig. 6
# do concentrate on the digits the caption names: every layer puts two to
# three times the named objects' share of the image on them (table above; the
# dashed line), and the word maps put a similar share on the one digit of
# their word (last column). What does not come out is the
# sharpening by the product. The printed grids show a reason specific to this
# stand-in: with `layer4` at stride 1 (the section-A classifier's setting),
# the three explained layers are all 7x7 grids, so the shallower layer brings
# no finer resolution into the product, while in the paper's ResNet101 at 224
# px `layer3` is a 14x14 grid against `layer4`'s 7x7. The product's linear
# weights give the deepest (broadest) map half of the weight, so the
# combination lies between the layers, closer to the broad ones, on every
# measure; the shallowest layer alone is the sharpest map. Adding a finer
# layer (the table above) makes the product sharper than the three-layer one,
# but the finer layer alone is sharper still: with most of the weight on the
# deep, broad maps, the product does not undercut its sharpest input on these
# scenes. With the criteria
# as fixed before measuring, the two sharpening claims are recorded as not
# reproduced at this profile; the first (single layers highlight more than
# the named objects) holds, but narrowly by the half-maximum area, and the
# normalised entropies near 0.95 say that all maps, the product included,
# spread a low floor over the whole image.

# %% [markdown]
# Time: the wall time of this run of the page.

# %%
print(f"this page: {time.perf_counter() - t_page:.0f} s wall time")

# %% [markdown]
# ## Summary
#
# * The captioner (section A's classifier as a frozen encoder, an LSTM
#   decoder trained on the captioned scenes) passes the gate fixed before
#   measuring: see the printed digit-word F1, BLEU-4, ROUGE-L and CIDEr.
# * Selective NormGrad of the caption's log-probability, at the ReLUs after
#   the downsampling shortcuts of `layer3` and `layer4` and before the global
#   pooling, highlights the named digits at every layer (Fig. 6), and
#   explaining one word highlights that word's digit.
# * The paper's reading that the product combination is sharper than each
#   layer is not reproduced here: the combination is not sharper than the
#   shallowest layer, by entropy or by the mass on the named objects; at this
#   profile the three layers share one 7x7 grid, and adding a finer 14x14
#   layer sharpens the product but not beyond that layer alone. The gpu and paper profiles
#   (ResNet101 with `layer4` at stride 2, so `layer3` is twice as fine as
#   `layer4`) are where the paper's setting is checked.
