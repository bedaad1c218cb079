"""The NormGrad chapters' experiments (Rebuffi et al., 2020): classifiers, pointing game, layer
combination, meta-saliency, randomisation and captioning: runners, results and claims.

Imports :mod:`gsutils.experiments.common`, never :mod:`gsutils.experiments.grid`.
"""
