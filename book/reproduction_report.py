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
# Every claim the chapters of this book check, in one table: the section of the
# supplement, the claim, the paper's number where it gives one, the number
# measured here, the criterion the verdict was computed with, and the verdict.
# The rows are written by the chapters as they run (`gsutils.claims`); this page
# only reads them.
#
# Gates are listed apart. A gate is this project's own precondition, fixed
# before measuring (for example, a network that segments the digits well
# enough to be explained); when it fails, the claims that rest on it read "not
# measured", and the failure says nothing about the paper. So the counts below
# give the papers' claims first and the gates separately.

# %% tags=["parameters"]
profile = "quick"
device = "auto"
seed = 0
data_root = ""

# %%
from gsutils import claims
from gsutils.profiles import get_profile
from gsutils.claims import gates, paper_claims
from gsutils.report import ledger_html, verdict_counts

cfg = get_profile(profile, device=device, seed=seed, data_root=data_root or None)
rows = claims.load(cfg.results_dir)

# %% [markdown]
# ## Summary

# %%
# NBVAL_CHECK_OUTPUT
verdict_counts(rows)

# %% [markdown]
# ## Grid Saliency (Hoyer et al., 2019)

# %%
ledger_html([r for r in paper_claims(rows) if r.paper == "grid_saliency"])

# %% [markdown]
# ## There and Back Again (Rebuffi et al., 2020)

# %%
ledger_html([r for r in paper_claims(rows) if r.paper == "normgrad"])

# %% [markdown]
# ## Gates
#
# The preconditions each chapter fixed before measuring; not claims of either
# paper.

# %%
ledger_html(gates(rows))
