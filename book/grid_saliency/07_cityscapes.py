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
# # S2 Context explanations on Cityscapes
#
# ## What is reproduced
#
# Hoyer et al. (2019, S2) explain a DeepLabv3+ (MobileNetV2 backbone) trained
# on Cityscapes with context saliency and ask *which context* each predicted
# class relies on. The pipeline, as the supplement specifies it:
#
# * **request masks** from the prediction's connected components after a 3x3
#   erosion: correct predictions of at least 10,000 px, erroneous ones (the
#   ground truth says another class) of at least 625 px, on 1024 x 2048 frames
#   (Fig. S12, Tables S1 and S2);
# * **grid saliency** with the optimised mask upsampled bilinearly; samples
#   whose preservation loss stays above 0.1, and empty maps, are dropped and
#   counted (Fig. S13 shows the intermediate steps);
# * a **baseline**: the kept requests' contours dilated by a budget of 400,000 px
#   per frame, shared among the requests;
# * **class statistics**: per request class, the share of the salient context
#   on each context class, for grid saliency and the baseline (Fig. S14). The
#   supplement prints no value for these shares (Fig. S14 is a figure); the
#   value compared with below, rider → bicycle about 0.31 against 0.06, is the
#   poster's, which is not among this project's sources and so is unverified
#   here;
# * Fig. S12's claim that a rider's salient context falls on the bike whatever
#   the size of its request mask;
# * a gallery of explanations including an empty map (Fig. S15), and the
#   effects S2.2 reads off it.
#
# Tables S1 and S2 count the *images* whose explanation survived the
# selection: per request class (S1: rider 39, car 249, person 45, bicycle 105,
# motorcycle 16, pole 162, traffic sign 81) and per pair of ground-truth and
# predicted class (S2), over 500 validation images. Those counts stand beside
# ours below; against the requests of 40 stand-in frames, with capped
# explanations, they are a scale, not a target.
#
# ## What differs from the paper
#
# * **Data: a stand-in.** Cityscapes cannot be downloaded here. At the quick
#   profile the page runs on *procedurally generated street scenes* written to
#   disk in Cityscapes' own layout (`leftImg8bit/`, `gtFine/` with polygons,
#   labelIds and instanceIds, rasterised by cityscapesscripts) and read back
#   through the same native loader a real root goes through. The stand-in
#   carries the relations the paper reports: riders sit on bicycles or
#   motorcycles and are drawn *exactly like persons* (so only the two-wheeler
#   tells them apart), cars on roads with markings, poles carrying traffic
#   signs, persons on sidewalks, groups, occlusions, large and small instances.
#   Given a data root with `cityscapes/`, the same code runs on the real set.
# * **Network and sizes.** A DeepLabv3+ with MobileNetV2 at width 0.35 and a
#   32-channel ASPP/decoder, on 64 x 128 frames, trained by this project's
#   code for 40 epochs of 480 scenes and shipped in `checkpoints/quick/`
#   (training takes longer than a page may). All pixel thresholds are scaled
#   by the frame's area, 64·128 / (1024·2048): see the printed values below.
# * **Fewer explanations.** The requests of 40 held-out frames are all counted
#   (Tables S1, S2, Fig. S12), but only up to 16 per class of the seven classes
#   with context relations are explained (correct predictions first, larger
#   requests first). At this frame size the scaled threshold for erroneous
#   predictions is 2 px, so many erroneous requests are small fragments.
# * **Mask grid.** 4 x 8 cells of 16 px with 100 steps: the cell size and
#   steps of S1.2, for which its L1 weight (0.05 per cell) and 0.2 clipping
#   were chosen. A first run with 8 px cells (128 cells) and 50 steps left 16 of
#   60 explanations (7 of 10 riders) above the 0.1 loss: with the penalty summed
#   over four times as many cells, keeping the needed context cost more than
#   the loss it saved. The change was made for that reason, before any
#   context share was judged with it.

# %% [markdown]
# ## Parameters
#
# The page writes the stand-in, reads it back, restores the shipped network and
# runs the grid-saliency optimisation of about 90 requests; the time it took
# is printed at its end.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.claims import open_chapter
from gsutils.profiles import describe

cfg, ledger = open_chapter("grid_saliency/07_cityscapes",
                           profile=profile, device=device, seed=seed, data_root=data_root)
print(describe(cfg, "scenes"))

# %%
import time
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from gsutils.data.cityscapes import TRAIN_CLASSES, class_colors
from gsutils.experiments.grid import scene_claims as claims
from gsutils.experiments.grid import street_context as sc
from gsutils.plots.scenes import (plot_context_shares, plot_gallery, plot_request_sizes, plot_s13_panels,
                                  plot_scenes)
from gsutils.plots.tables import html_table
from gsutils.references import (CITYSCAPES_RIDER_BICYCLE_POSTER, CITYSCAPES_S2_SETTINGS,
                                GRID_SALIENCY_POSTER_S2, source_line)

t_page = time.perf_counter()
thr = sc.scaled_thresholds(cfg.scenes.height, cfg.scenes.width)
_what = {"min_correct": "smallest correct request (px)", "min_erroneous": "smallest erroneous request (px)",
         "baseline_budget": "baseline budget (px)", "max_preservation": "largest preservation loss kept"}
_scaled = asdict(thr)
display(html_table(pd.DataFrame(
    [{"threshold": _what.get(k, k), "supplement (1024 x 2048)": v,
      f"here ({cfg.scenes.height} x {cfg.scenes.width})": _scaled.get(k, v)}
     for k, v in CITYSCAPES_S2_SETTINGS.items()], dtype=object), digits=1, index=False))

# %% [markdown]
# ## The data and the network
#
# Three held-out frames of the stand-in (read back from the Cityscapes
# layout), their ground truth and the DeepLab's prediction, in Cityscapes'
# colours. The network is restored from `checkpoints/quick/` when its recipe
# and data match exactly (otherwise it is trained, which takes about ten
# minutes on one thread).

# %%
res = sc.run_street_context(cfg, progress=True)
hist = res.history
print(f"training: {len(hist)} epochs, final loss {hist[-1]['loss']:.3f}, "
      f"{sum(h['seconds'] for h in hist):.0f} s when it was trained")
fig = plot_scenes(res.data.val_x[:3].numpy(), res.data.val_y[:3].numpy(),
                  sc.predict(res.model, res.data.val_x[:3]).numpy(), class_colors())
plt.show()

# %% [markdown]
# ## The gate
#
# Fixed before measuring: the saliency claims are judged only when the
# network's mIoU on the held-out frames (over the classes they contain)
# reaches `cfg.scenes.gate_miou`.

# %%
# NBVAL_CHECK_OUTPUT
gate = claims.scene_gate(res.miou, cfg.scenes.gate_miou, res.iou, "S2")
print(gate.line())

# %% [markdown]
# ## Fig. S12: request-mask sizes
#
# Every request of the explained frames (correct and erroneous predictions),
# after the 3x3 erosion, with the two size thresholds; requests below them are
# not part of any table.

# %%
fig = plot_request_sizes(res.all_size, res.all_correct, thr)
plt.show()

# %% [markdown]
# ## Table S1: requests per class, and what became of the explained ones
#
# "Explained" are the requests given to grid saliency (the quick profile caps
# them per class); of those, samples whose preservation loss stays above 0.1
# and empty maps are dropped.

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(claims.table_s1(res), index=False))

# %% [markdown]
# Beside the supplement's Table S1 (its unit is the image: an image counts for
# a class when that class's explanation in it was kept; we count requests,
# which are connected components, and images):

# %%
# NBVAL_CHECK_OUTPUT
print(source_line("TABLE_S1_COUNTS"))
display(html_table(claims.table_s1_vs_paper(res), index=False))

# %% [markdown]
# ## Table S2: ground-truth class x predicted class of the requests
#
# The diagonal holds the correct requests; off the diagonal, the erroneous
# ones by their majority ground-truth class.

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(claims.table_s2(res)))

# %% [markdown]
# Beside the supplement's Table S2, for the pairs it lists (its requests are
# the intersection of ground truth and prediction, at least 625 px on
# 1024 x 2048 frames; our diagonal uses the larger threshold of correct
# predictions):

# %%
# NBVAL_CHECK_OUTPUT
print(source_line("TABLE_S2_COUNTS"))
display(html_table(claims.table_s2_vs_paper(res), index=False))

# %% [markdown]
# ## Fig. S13: the intermediate steps of one explanation
#
# A rider request: the input, the request mask, the prediction; the image with
# the context replaced by the chosen grey value ($M = 0$) and its prediction;
# the image under the optimised mask, $x'(M^*)$, and its prediction; the map.
# The optimisation is the toy chapters' (`gsutils.saliency.grid`, reached
# through `gsutils.explain`; its code is shown in
# {doc}`04_bias_localization`), with the mask upsampled bilinearly
# (`upsample="bilinear"`).

# %%
show = sc.gallery_indices(res, ("rider",)) or [0]
i = show[0]
fig = plot_s13_panels(sc.s13_views(res, i), res.masks[i], class_colors(),
                      title=f"request class {TRAIN_CLASSES[res.cls[i]]}, preservation loss "
                            f"{res.preservation[i]:.3f}, loss at M = 0 {res.empty_loss[i]:.3f}")
plt.show()

# %% [markdown]
# ## Fig. S14: which context each request class relies on
#
# For each request class (rows), the mean share of the salient context that
# falls on each ground-truth context class (columns): grid saliency (top
# matrix) against the dilated-contour baseline (bottom), over the kept
# explanations. A context class
# far above its baseline is one the network *uses*, not merely one that lies
# next to the request.

# %%
req_classes = sorted({int(c) for c in res.cls[res.kept]})
grid_m, counts = claims.share_matrix(res, "grid", req_classes)
base_m, _ = claims.share_matrix(res, "baseline", req_classes)
fig = plot_context_shares(grid_m, base_m, [TRAIN_CLASSES[c] for c in req_classes], TRAIN_CLASSES, counts)
plt.show()

# %% [markdown]
# ## Fig. S15: a gallery of explanations
#
# The first kept explanation of a rider, a person, a car and a traffic sign
# (where there is one), and an
# empty map (the request's prediction survives without any context). The
# request is outlined in cyan; the map is overlaid. A class of the list with
# no kept explanation is named in the figure's title.

# %%
g = sc.gallery_indices(res)
frames = res.data.val_x[res.frame[g]].numpy()
titles = [f"{TRAIN_CLASSES[res.cls[j]]}" + (" (empty map)" if res.dropped_empty[j] else "") for j in g]
missing = [c for c in ("rider", "person", "car", "traffic sign") if TRAIN_CLASSES.index(c) not in res.cls[g]]
fig = plot_gallery(frames, res.masks[g], res.maps[g].astype(np.float32), titles, missing=missing)
plt.show()

# %% [markdown]
# S2.2 reads three effects off this gallery. One is checked in the ledger
# below: large, easily recognised instances (cars, pedestrians) get empty
# maps, because their prediction survives with no context at all (Fig. S15 i).
# Two cannot be checked here:
#
# * *saliency on road markings for cars* (Fig. S15 e): Cityscapes' labels,
#   and the stand-in's, have no road-marking class (markings are part of
#   `road`), so no statistic can tell markings from the rest of the road;
# * *occluded objects light up along their whole contour* (Fig. S15 b, d):
#   the requests carry no occlusion flag (Cityscapes annotates none), and at
#   this profile one cell of the optimised mask is 16 px on a 64 x 128 frame,
#   about the size of a whole person, so a map cannot follow a contour.

# %% [markdown]
# ### Shares against densities
#
# A share is area-weighted: a small context class gets a small share even
# when the map is densest on it. For each pair of the claims below, the mean
# map value on that context class's pixels divided by the mean on all context
# pixels (1 = no preference), for grid saliency and the baseline.

# %%
# NBVAL_CHECK_OUTPUT
for request, context in (("rider", "bicycle"), ("rider", "motorcycle"), ("traffic sign", "pole")):
    d = claims.context_density(res, request, context)
    print(f"{request} -> {context}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in d.items()))

# %% [markdown]
# ### Reading the results
#
# * **Riders are mostly not recognised as riders.** Table S2 shows most
#   ground-truth riders predicted as persons (and persons as riders): on the
#   stand-in a rider looks exactly like a person, and this small network has
#   only partly learned to tell them apart by the two-wheeler below. The rider
#   requests that are explained are therefore few, and many of them lose the
#   rider prediction whatever context is kept (dropped with loss > 0.1, Table S1).
# * **Where the network does use the bicycle, the share hides it.** In the
#   Fig. S13 example the optimised mask keeps the two-wheeler under the rider;
#   but a 16 px cell around a bicycle of a few dozen pixels also keeps road, so
#   the bicycle's *share* of the map stays small. The densities above say
#   whether the map is nevertheless densest on the bicycle. On the stand-in the
#   two-wheeler touches the rider, so the baseline's ring around the rider is
#   dense on it as well: a share far above the baseline needs a map that keeps
#   the bicycle and little else, which 16 px cells on a 64 x 128 frame cannot.
# * **Cars need little context.** An empty map means the network predicts a
#   car from the car alone (Table S1, Fig. S15).
# * **The traffic-sign control depends on a few requests at quick.** A sign on
#   the 64 x 128 stand-in covers a few dozen pixels, and the network labels few
#   of them "traffic sign". With no kept sign explanation its claim reads "not
#   measured"; the gpu profile's 128 x 256 frames give signs four times the area.
#
# The counts behind these points, from this run:

# %%
# NBVAL_CHECK_OUTPUT
display(Markdown(claims.street_reading(res)))

# %% [markdown]
# ## Claims
#
# Criteria fixed before measuring (`gsutils.experiments.grid.scene_claims`): a
# context relation is "far above its baseline" when the mean grid-saliency
# share is at least twice the baseline's and the paired difference's 95 %
# bootstrap interval lies above zero. Rider → bicycle is the poster's number;
# traffic sign → pole is a relation the stand-in builds in (a positive control,
# no paper number). Fig. S12's row asks, for the kept rider explanations
# split at the median request size, whether the maps are densest on the
# two-wheeler in both halves; Fig. S15's row whether the empty maps come from
# large cars and persons.

# %%
# NBVAL_CHECK_OUTPUT
print(f"poster (not in the supplement): rider -> bicycle {CITYSCAPES_RIDER_BICYCLE_POSTER} (grid, baseline)")
print(GRID_SALIENCY_POSTER_S2)
_ = claims.record_cityscapes(ledger, res, gate, max_loss=CITYSCAPES_S2_SETTINGS["max_preservation"])

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# the verdict lines (the Summary table below shows them to a reader)
print(ledger.summary())

# %% [markdown]
# ## Summary

# %%
print(f"page time: {time.perf_counter() - t_page:.0f} s")
from gsutils.report import chapter_table

chapter_table(ledger)
