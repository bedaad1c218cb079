"""Caption quality (BLEU-4, ROUGE-L, CIDEr, object mentions) and the sharpness of saliency maps.

Caption scores use the pure-Python scorers of ``pycocoevalcap`` (the COCO
caption evaluation code). Its PTB tokenizer, METEOR and SPICE need Java (and
SPICE a download) and are not used: captions are tokenized by
:func:`gsutils.data.captions.tokenize` (lower case, punctuation dropped), which
for the generated captions is exactly their words.

CIDEr's document frequencies come from the references of the evaluated set
(as in ``pycocoevalcap``), so its value depends on the set; it is comparable
between models evaluated on the same set.

Sharpness of a map ``s >= 0`` over ``P`` pixels, ``p = s / sum(s)``:

* :func:`mass_share`: ``sum(p[mask])``, the share of the mass on a region;
* :func:`normalized_entropy`: ``-sum(p log p) / log(P)``, 1 for a uniform map,
  0 for a single pixel;
* :func:`half_max_area`: the share of pixels where ``s >= max(s) / 2``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from gsutils.data.captions import tokenize


def caption_scores(references: Mapping[int, Sequence[str]], candidates: Mapping[int, str]) -> dict[str, float]:
    """Corpus BLEU-4, ROUGE-L and CIDEr of ``candidates`` against ``references``.

    Parameters
    ----------
    references:
        ``{image id: [reference captions]}`` (at least one each).
    candidates:
        ``{image id: generated caption}``, the same ids.

    Returns
    -------
    dict
        ``{"BLEU-4": .., "ROUGE-L": .., "CIDEr": ..}``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if set(references) != set(candidates):
        raise ValueError("references and candidates must have the same image ids; "
                         f"{len(set(references) ^ set(candidates))} ids differ")
    if not candidates:
        raise ValueError("no captions to score")
    gts, res = {}, {}
    for i in candidates:
        refs = [" ".join(tokenize(r)) for r in references[i]]
        if not refs:
            raise ValueError(f"image {i} has no reference caption")
        gts[i] = refs
        res[i] = [" ".join(tokenize(candidates[i]))]
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    return {"BLEU-4": float(bleu[3]), "ROUGE-L": float(rouge), "CIDEr": float(cider)}


def mention_counts(predicted: Sequence[str], present: Sequence[str], words: Sequence[str]) -> tuple[int, int, int]:
    """Matches, predicted and present counts of the ``words`` (multisets) in one caption.

    ``predicted``: the caption's words; ``present``: the names of the image's objects.
    """
    vocab = set(words)
    p = Counter(w for w in predicted if w in vocab)
    g = Counter(w for w in present if w in vocab)
    return sum((p & g).values()), sum(p.values()), sum(g.values())


def mention_f1(predicted: Sequence[Sequence[str]], present: Sequence[Sequence[str]],
               words: Sequence[str]) -> dict[str, float]:
    """Micro-averaged precision, recall and F1 of object mentions, and the exact-match share.

    A caption's mentions are its words from ``words`` (e.g. the ten digit
    names), counted with multiplicity; they match the image's objects as
    multisets. ``exact`` is the share of captions whose mentions equal the objects.
    """
    if len(predicted) != len(present):
        raise ValueError(f"{len(predicted)} captions but {len(present)} object lists")
    if not predicted:
        raise ValueError("no captions to score")
    tp = n_pred = n_true = exact = 0
    for pr, gt in zip(predicted, present):
        m, a, b = mention_counts(pr, gt, words)
        tp, n_pred, n_true = tp + m, n_pred + a, n_true + b
        exact += int(m == a == b)
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_true if n_true else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return {"precision": prec, "recall": rec, "f1": f1, "exact": exact / len(predicted)}


def _flat(s: torch.Tensor) -> torch.Tensor:
    if s.dim() < 2:
        raise ValueError(f"a map must have shape (..., H, W), got {tuple(s.shape)}")
    s = s.detach().double().flatten(-2)
    if bool((s < 0).any()):
        raise ValueError("saliency maps must be non-negative; clamp or take the absolute value first")
    return s


def mass_share(s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of each map's mass on ``mask`` (``(..., H, W)`` bool); NaN for an all-zero map."""
    f = _flat(s)
    m = mask.flatten(-2).to(f.dtype)
    total = f.sum(-1)
    return torch.where(total > 0, (f * m).sum(-1) / total.clamp_min(1e-300), torch.nan)


def normalized_entropy(s: torch.Tensor) -> torch.Tensor:
    """``H(p) / log(P)`` of each map (``(..., H, W)``); NaN for an all-zero map."""
    f = _flat(s)
    total = f.sum(-1, keepdim=True)
    p = f / total.clamp_min(1e-300)
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(-1) / math.log(f.shape[-1])
    return torch.where(total[..., 0] > 0, h, torch.nan)


def half_max_area(s: torch.Tensor) -> torch.Tensor:
    """Share of pixels at or above half the map's maximum; NaN for an all-zero map."""
    f = _flat(s)
    top = f.amax(-1, keepdim=True)
    area = (f >= top / 2).double().mean(-1)
    return torch.where(top[..., 0] > 0, area, torch.nan)


__all__ = ["caption_scores", "mention_counts", "mention_f1", "mass_share", "normalized_entropy",
           "half_max_area"]
