"""Resumable experiment runners and the result store."""

from gsutils.experiments.common.store import Store
from gsutils.io import config_key

__all__ = ["Store", "config_key"]
