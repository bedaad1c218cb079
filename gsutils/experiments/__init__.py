"""Resumable experiment runners and the result store, grouped as the book is.

* :mod:`gsutils.experiments.common`: what both papers share (the result store, the one epoch
  loop, the executors, the shipped-network type, provenance);
* :mod:`gsutils.experiments.grid`: the Grid Saliency part's runners, results and claims;
* :mod:`gsutils.experiments.normgrad`: the NormGrad part's.

``grid`` and ``normgrad`` never import each other; ``common`` imports neither
(``tests/test_layers.py``).
"""

from gsutils.experiments.common.store import Store
from gsutils.io import config_key

__all__ = ["Store", "config_key"]
