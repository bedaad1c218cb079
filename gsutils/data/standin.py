"""What every generated stand-in set shares: split sizes, a seed and a key.

The street scenes (:mod:`gsutils.data.street_scenes`) and the COCO-format
scenes (:mod:`gsutils.data.coco_semantic`) are written to disk once per
configuration; :meth:`StandinConfig.key` names the folder. Each subclass sets
``FORMAT`` (bumped when what it writes changes) and adds its image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from gsutils.io import config_key

__all__ = ["StandinConfig"]


@dataclass(frozen=True)
class StandinConfig:
    """Split sizes and seed of a stand-in set; every field is a non-negative int."""

    n_train: int = 400
    n_val: int = 100
    seed: int = 0

    #: version of what the subclass writes (part of the key)
    FORMAT: ClassVar[int] = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f.name} must be a non-negative int, got {v!r}")

    def key(self) -> str:
        """A stable key of the set: the format version and every field."""
        return config_key({"format": self.FORMAT, **asdict(self)})
