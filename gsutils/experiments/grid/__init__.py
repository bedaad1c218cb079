"""The Grid Saliency chapters' experiments (Hoyer et al., 2019): the toy bias grid (S1.1-S1.6), the
street scenes (S2) and MS COCO (S3): runners, results and claims.

Imports :mod:`gsutils.experiments.common`, never :mod:`gsutils.experiments.normgrad`.
"""
