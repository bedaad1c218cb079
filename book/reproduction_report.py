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
# # Reproduction report
#
# Every claim the chapters of this book check, read from the ledger the
# chapters write as they run (`gsutils.claims`); this page only reads it.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %% tags=["hide-input"]
from gsutils import claims
from gsutils.profiles import get_profile
from gsutils.report import Report

cfg = get_profile(profile, device=device, seed=seed, data_root=data_root or None)
report = Report(claims.load(cfg.results_dir))

# %% tags=["remove-input"]
# NBVAL_CHECK_OUTPUT
report.intro()

# %% [markdown]
# A *claim* is something a paper states. A *gate* is this project's own
# precondition, fixed before measuring (for example, a network that segments
# the digits well enough to be explained); when a gate fails, the claims that
# rest on it read "not measured", and the failure says nothing about the
# paper. So claims and gates are counted apart.
#
# ## By chapter
#
# Each chapter's claims by verdict, and its gates; a chapter's name leads to
# its page.

# %% tags=["remove-input"]
# NBVAL_CHECK_OUTPUT
report.summary()

# %% [markdown]
# ## Grid Saliency (Hoyer et al., 2019)
#
# Per chapter: the section of the supplement (a link to the chapter), the
# claim, the paper's number where it gives one, the number measured here and
# the verdict. The criterion the verdict was computed with, fixed before
# measuring, and the chapter's note unfold under each claim.

# %% tags=["remove-input"]
report.claims("grid_saliency")

# %% [markdown]
# ## There and Back Again (Rebuffi et al., 2020)

# %% tags=["remove-input"]
report.claims("normgrad")

# %% [markdown]
# ## Gates
#
# The preconditions the chapters fixed before measuring; not claims of either
# paper. A gate that several chapters record (the same network, the same
# number) is listed once, with the chapters that record it.

# %% tags=["remove-input"]
report.gates()
