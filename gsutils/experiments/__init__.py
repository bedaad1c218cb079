"""Resumable experiment runners and the result store."""

from gsutils.experiments.store import Store, config_key

__all__ = ["Store", "config_key"]
