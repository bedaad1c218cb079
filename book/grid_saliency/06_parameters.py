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
# # S1.6 Optimisation parameters of grid saliency
#
# ## What is reproduced
#
# Grid saliency optimises a low-resolution preservation mask by SGD. S1.2
# fixes its settings: L1 weight λ = 0.05, learning rate 0.2, momentum 0.5,
# initial mask value 0.5, and a grey value chosen per image among 0, 0.25,
# 0.5, 0.75 and 1. Hoyer et al. (2019, S1.6, **Fig. S11**) vary each of them
# around this setting and report the mean context bias detection (mCBD, on
# the biased digit and on the unbiased digits) and the mean context bias
# localisation (mCBL), with the S1.2 setting drawn as red points. This page
# re-runs these sweeps, plus the grey value choice (per-image choice vs a fixed
# grey of 0, 0.5 or 1), and checks the section's claims: the results degrade
# smoothly around the chosen setting; λ trades detection against localisation
# (a higher λ keeps a smaller salient region); the chosen setting keeps both
# mCBD and mCBL high.
#
# Each (network, setting) pair is one task whose result is stored in the
# result store as soon as it finishes (`gsutils.experiments.grid.sweeps`). The
# same command runs the sweeps here, on a local Dask cluster, on a scheduler,
# or on a Slurm/PBS cluster through dask-jobqueue; a killed sweep loses only
# the tasks in flight (a test kills one and resumes it). The paper profile on
# a Slurm cluster, one single-threaded worker per job:
#
# ```bash
# python -m gsutils.experiments.grid.sweeps --profile paper --device cuda \
#     --cluster slurm --jobs 20 --queue gpu --walltime 02:00:00 --memory 16GB
# ```
#
# (`--cluster pbs` for PBS, `--executor dask --address tcp://host:8786` for a
# running scheduler, `--executor dask --workers 8` for a local cluster.)
#
# ## What differs from the paper
#
# The caption averages over bias digits x textures x seeds of the grid. The
# quick profile sweeps on one shipped quick network, to stay within the book's
# time budget on two CPU cores: the first strongly biased one (bias digit 2,
# textures in grid order) whose maps at the S1.2 setting are informative, i.e.
# at least 90 % of the bias digit's maps are non-empty (the safeguard of
# S1.3/S1.4, applied before the sweep: on a network whose S1.2 maps are empty,
# every sweep point around it would be the same empty map). The network chosen
# is printed below; every point is its mean over `images_bias_digit` test
# images of the bias digit and `images_other_digit` of every other digit
# (printed below), with fewer values of the learning rate and the momentum (4
# each, 17 distinct settings), and the network's layers in bfloat16 as in its
# training where the CPU computes bfloat16 natively, float32 elsewhere (S1.3
# prints which). The gpu and paper profiles sweep on every network of their
# grids with 20 + 5 images per
# network and five values per parameter.

# %% [markdown]
# ## Parameters
#
# The settings used (the paper profile's value in brackets where it differs).
# The time this run took is printed at the end.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils.claims import open_chapter
from gsutils.profiles import describe

cfg, ledger = open_chapter("grid_saliency/06_parameters",
                           profile=profile, device=device, seed=seed, data_root=data_root)

# %%
import time

import matplotlib.pyplot as plt
from IPython.display import display

from gsutils.experiments.grid import context_claims as cc
from gsutils.experiments.grid import sweeps as sw
from gsutils.plots.sweeps import plot_sweeps
from gsutils.plots.tables import html_table

t_page = time.perf_counter()
print(describe(cfg, "sweeps", "saliency"))
print(f"S1.2 setting: {sw.base_config(cfg)}")
print(f"networks: {[r.label for r in sw.sweep_networks(cfg)]}; {len(sw.sweep_tasks(cfg))} distinct tasks")

# %% [markdown]
# ## The gate
#
# The S1.3/S1.4 gate, fixed before measuring: the unbiased network's mean
# digit IoU on unbiased test data must reach `cfg.train.gate_digit_miou`.

# %%
# NBVAL_CHECK_OUTPUT
gate = cc.saliency_gate(cfg)
print(gate.line())

# %% [markdown]
# ## Fig. S11: mCBD and mCBL per parameter value
#
# Top: mCBD over the bias digit's images (solid) and over the other digits'
# (dashed); bottom: mCBL over the biased images of the bias digit (empty maps
# scored as chance; dotted: chance). Red: the S1.2 setting. The table adds the
# salient area (the mean salient share of the context over all explained
# images) and the bias digit's empty-map rate.

# %%
results = sw.run_sweeps(cfg, progress=False)
table = sw.sweep_table(cfg, results)
fig = plot_sweeps(table)
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
display(html_table(table.drop(columns=["seconds"]), digits=3, index=False))

# %% [markdown]
# ## λ: detection against localisation
#
# Spearman correlations of λ with the salient area, the bias digit's mCBD and
# mCBL over the λ sweep.

# %%
# NBVAL_CHECK_OUTPUT
_names = {"area": "salient area", "mcbd_biased": "mCBD of the bias digit", "mcbl": "mCBL"}
print("Spearman ρ with λ: " + "; ".join(f"{_names.get(k, k)} {v:+.3f}" for k, v in sw.lambda_trend(table).items()))

# %% [markdown]
# ## Claims
#
# Criteria (in `gsutils.experiments.grid.sweeps`, fixed before measuring), judged
# only when the gate holds: *smooth*: at the values next to the S1.2 value, the
# mCBD gap (bias digit minus other digits) and the mCBL change by at most 0.1,
# for every ordered parameter (λ, learning rate, momentum, initial mask; the
# grey options have no order); *λ trade-off*: Spearman ρ(λ, salient area) <= -0.8,
# ρ(λ, mCBD of the bias digit) <= -0.8 and ρ(λ, mCBL) >= 0.8; *chosen setting*:
# its mCBD gap and mCBL are each at least the median over all sweep points.
# As in S1.3 and S1.4, each also needs informative maps: at the S1.2 setting at
# least 90 % of the bias digit's maps are non-empty. This safeguard was added
# after a first run on networks whose bias grid saliency does not find (every
# sweep point the same empty map, so "smooth" and "at least the median" held
# trivially); it can only turn a verdict into "not reproduced".

# %%
_ = sw.record_sweeps(ledger, cfg, table, gate)
from gsutils.report import chapter_table

chapter_table(ledger)

# %% [markdown]
# ## Summary

# %%
# NBVAL_CHECK_OUTPUT
print(gate.line())
chosen = table[table.chosen].iloc[0]
print(f"S1.2 setting: mCBD {chosen['mcbd_biased']:.3f} (bias digit) vs {chosen['mcbd_unbiased']:.3f} "
      f"(other digits), mCBL {chosen['mcbl']:.3f} (chance {chosen['chance']:.3f}); "
      f"over all settings mCBL ranges {table['mcbl'].min():.3f}-{table['mcbl'].max():.3f}")

# %% tags=["remove-cell"]
# NBVAL_CHECK_OUTPUT
# the verdict lines (the Summary table below shows them to a reader)
print(ledger.summary())

# %%
print(f"this page: {time.perf_counter() - t_page:.0f} s wall time; the stored sweep tasks took "
      f"{sum(float(r['seconds']) for r in results):.0f} s to compute")
