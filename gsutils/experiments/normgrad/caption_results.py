"""Typed results of the captioning chapter (NormGrad supplement F, Fig. 6).

* :class:`CaptionEvaluation` (with :class:`MentionScores`): what
  :func:`gsutils.experiments.normgrad.captioning.evaluate_captioner` returns;
* :class:`ExplainedCaptions`: what
  :func:`gsutils.experiments.normgrad.caption_saliency.explain_captions` returns;
* :class:`SharpnessSummary` (with :class:`MapSharpness`): what
  :func:`gsutils.experiments.normgrad.caption_saliency.sharpness_summary` returns.

The first two are cached in the result store. Each converts to and from the
form it is stored in (:meth:`CaptionEvaluation.to_json` /
:meth:`CaptionEvaluation.from_json`, a JSON object; :meth:`ExplainedCaptions.to_arrays`
/ :meth:`ExplainedCaptions.from_arrays`, the arrays of an ``.npz``), which is the
form the string-keyed dicts they replace had, so cached entries stay valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = ["CaptionEvaluation", "ExplainedCaptions", "MapSharpness", "MentionScores", "SharpnessSummary"]


@dataclass(frozen=True)
class MentionScores:
    """The digit words of the generated captions against the scenes' digits (as multisets, micro-averaged)."""

    #: share of the digit words that name a digit of the scene
    precision: float
    #: share of the scenes' digits that a digit word names
    recall: float
    #: harmonic mean of precision and recall (what the chapter's gate reads)
    f1: float
    #: share of the captions whose digit words are exactly the scene's digits
    exact: float

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MentionScores:
        """From :func:`gsutils.metrics.captions.mention_f1`'s dict (the stored form)."""
        return cls(**{f.name: float(d[f.name]) for f in fields(cls)})

    def to_json(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class CaptionEvaluation:
    """Caption quality of a captioner's greedy test captions, and the chapter's gate."""

    #: BLEU-4, ROUGE-L and CIDEr by name (sorted by name, as stored)
    scores: dict[str, float]
    #: the digit-word mentions; ``None`` without object annotations (COCO)
    mentions: MentionScores | None
    #: the mention F1 the gate asks for (``profile.captioning.gate_mention_f1``)
    gate_threshold: float
    #: whether the mention F1 reaches ``gate_threshold``; ``None`` without object annotations
    gate_passed: bool | None
    #: the greedy caption of every test image
    captions: tuple[str, ...]
    #: the reference captions of every test image
    references: tuple[tuple[str, ...], ...]
    #: the number of test images
    n: int

    def __post_init__(self) -> None:
        if not len(self.captions) == len(self.references) == self.n:
            raise ValueError(f"{len(self.captions)} captions and {len(self.references)} reference lists "
                             f"for {self.n} test images")

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaptionEvaluation:
        """From the stored form: ``{"scores", "mentions", "gate": {"threshold", "passed"}, "captions",
        "references", "n"}``."""
        m, gate = d["mentions"], d["gate"]
        return cls(scores={str(k): float(v) for k, v in d["scores"].items()},
                   mentions=None if m is None else MentionScores.from_json(m),
                   gate_threshold=float(gate["threshold"]),
                   gate_passed=None if gate["passed"] is None else bool(gate["passed"]),
                   captions=tuple(d["captions"]), references=tuple(tuple(r) for r in d["references"]),
                   n=int(d["n"]))

    def to_json(self) -> dict[str, Any]:
        """The stored form (see :meth:`from_json`)."""
        return {"scores": dict(self.scores), "mentions": None if self.mentions is None else self.mentions.to_json(),
                "gate": {"threshold": self.gate_threshold, "passed": self.gate_passed},
                "captions": list(self.captions), "references": [list(r) for r in self.references], "n": self.n}


@dataclass(frozen=True, eq=False)
class ExplainedCaptions:
    """Selective NormGrad maps of the generated captions of the first test images, and their sharpness.

    ``N`` explained images of side ``S``; ``M`` maps per image, in the order of
    :func:`gsutils.experiments.normgrad.caption_saliency.map_names` (the layers, then the
    combination). Compared by identity (it holds arrays).
    """

    #: ``(N, M, S, S)`` float32 maps of the caption's log-probability, each in ``[0, 1]``
    maps: np.ndarray
    #: ``(N, M, S, S)`` float32 maps of the log-probability of the caption's first digit word (zeros without one)
    word_maps: np.ndarray
    #: ``(N,)`` int64 position in the caption of that digit word (``-1`` without one)
    word_pos: np.ndarray
    #: ``(N, M)`` share of each map's mass on the named objects (NaN where none is named or annotated)
    mass: np.ndarray
    #: ``(N, M)`` share of each word map's mass on its digit word's objects (NaN without such a word or digit)
    word_mass: np.ndarray
    #: ``(N, S, S)`` uint8 the pixels of the objects the caption names (1 on them)
    named_mask: np.ndarray
    #: ``(N, M)`` normalised entropy of each map (1: uniform)
    entropy: np.ndarray
    #: ``(N, M)`` share of the image at or above half of each map's maximum
    half_max: np.ndarray
    #: ``(N,)`` share of the image the named objects cover (NaN where none is named or annotated)
    named_area: np.ndarray
    #: ``(N, 3, S, S)`` uint8 the explained test images
    images: np.ndarray
    #: ``(N,)`` int64 their indices in the test split
    index: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.index)
        wrong = [f.name for f in fields(self) if len(getattr(self, f.name)) != n]
        if wrong:
            raise ValueError(f"{wrong} do not hold one row per explained image ({n})")

    @property
    def n_images(self) -> int:
        """The number of explained images ``N``."""
        return len(self.index)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ExplainedCaptions:
        """From the stored form: one array per field, under the field's name."""
        return cls(**{f.name: np.asarray(arrays[f.name]) for f in fields(cls)})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stored form (see :meth:`from_arrays`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MapSharpness:
    """One map's sharpness: means over the explained captions (of the finite values)."""

    #: share of the map's mass on the objects the caption names
    mass: float
    #: normalised entropy (1: uniform)
    entropy: float
    #: share of the image at or above half the map's maximum
    half_max: float
    #: share of the word map's mass on the objects of its digit word
    word_mass: float


@dataclass(frozen=True)
class SharpnessSummary:
    """The sharpness of every map of :class:`ExplainedCaptions`, and the named objects' area."""

    #: per map name (the layers, then ``"combined"``), in the order of the maps
    maps: dict[str, MapSharpness]
    #: mean share of the image the named objects cover (what a map blind to them puts on them)
    named_area: float
    #: captions that name a digit present in their scene (over which ``named_area`` is averaged)
    n_named: int
