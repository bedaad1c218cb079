"""Shared machinery of both papers' experiments: the result store, the one epoch loop, the executors,
the shipped-network type and the provenance check of shipped networks.

Imports neither :mod:`gsutils.experiments.grid` nor :mod:`gsutils.experiments.normgrad`.
"""
