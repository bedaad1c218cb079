"""NormGrad supplement F, Fig. 6: selective NormGrad maps of a captioner's captions.

The explained score is the log-probability of the caption the captioner
generated, ``log p(w_1 .. w_T <end> | image)`` (or, optionally, of one word
of it), computed with teacher forcing by
:class:`gsutils.models.captioner.CaptionLogProb`; the Extract & Aggregate
engine (:func:`gsutils.saliency.extract_aggregate.extract_aggregate`) takes
its gradient at the layers of :data:`gsutils.models.captioner.EXPLAINED_LAYERS`
and aggregates it with selective NormGrad, ``||max(0, x * g)||`` over channels.
The layer maps are combined by the weighted product of
:mod:`gsutils.saliency.combine` with linear weights ``1, 2, 3`` (deeper layers
weigh more). Every map's sharpness is measured with
:mod:`gsutils.metrics.captions`: its mass on the objects the caption names,
its normalised entropy and its half-maximum area.

:func:`main` is the chapter's command line, which trains (or restores),
evaluates and explains the captioner::

    python -m gsutils captioning --profile quick [--retrain] [--export]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from gsutils.data.captions import DIGIT_CLASSES, Vocabulary, tokenize
from gsutils.experiments.common.store import Store
from gsutils.experiments.normgrad.caption_results import ExplainedCaptions, MapSharpness, SharpnessSummary
from gsutils.experiments.normgrad.captioning import (
    captioner_config,
    evaluate_captioner,
    load_split,
    normalize,
    shipped_network,
    train_or_load_captioner,
)
from gsutils.metrics.captions import half_max_area, mass_share, normalized_entropy
from gsutils.models.captioner import EXPLAINED_LAYERS, Captioner, CaptionLogProb
from gsutils.profiles import Profile
from gsutils.saliency.combine import combine_maps, linear_weights, minmax
from gsutils.saliency.extract_aggregate import extract_aggregate

METHOD = "selective_normgrad"


def word_position(caption_ids: torch.Tensor, vocab: Vocabulary, words: Sequence[str]) -> int | None:
    """The first position in ``caption_ids`` ``(T,)`` holding one of ``words``, else ``None``."""
    wanted = {vocab.index[w] for w in words if w in vocab.index}
    for t, i in enumerate(caption_ids.tolist()):
        if i in wanted:
            return t
    return None


def caption_maps(model: Captioner, images: torch.Tensor, tokens: torch.Tensor, *, word: int | None = None,
                 layers: Sequence[str] = EXPLAINED_LAYERS) -> dict[str, torch.Tensor]:
    """Selective NormGrad of ``log p(caption | image)`` at ``layers`` and their product combination.

    Parameters
    ----------
    model:
        A captioner.
    images:
        ``(N, 3, S, S)`` encoder inputs (normalised).
    tokens:
        ``(N, T)`` the captions explained (ending with ``<end>``).
    word:
        Explain only the log-probability of the word at this position.

    Returns
    -------
    dict
        ``{layer: (N, 1, S, S)}`` (bilinearly upsampled and min-max normalised to
        ``[0, 1]``, as the combination sees them) and ``"combined"``: the
        weighted product of the min-max normalised layer maps with linear
        weights ``1, 2, ..`` (in the order of ``layers``, deepest last).
    """
    score = CaptionLogProb(model, tokens, word=word)
    raw = extract_aggregate(score, images, 0, list(layers), [METHOD], resize=False)
    size = tuple(images.shape[-2:])
    # each layer's map as it enters the combination: upsampled, then min-max normalised
    out = {name: minmax(F.interpolate(raw[METHOD, name], size=size, mode="bilinear", align_corners=False))
           for name in layers}  # (N, 1, S, S) each
    out["combined"] = combine_maps([raw[METHOD, name] for name in layers], linear_weights(len(layers)),
                                   mode="product", size=size)
    return out


def map_names(layers: Sequence[str] = EXPLAINED_LAYERS) -> tuple[str, ...]:
    """The maps of :func:`explain_captions`, in order: the layers, then the combination."""
    return tuple(layers) + ("combined",)


def explain_captions(profile: Profile, *, layers: Sequence[str] = EXPLAINED_LAYERS,
                     progress: bool = False) -> ExplainedCaptions:
    """Maps and sharpness of the generated captions of the first ``n_explain`` test images (cached).

    ``layers`` are the explained layers (shallowest first; default: the paper's three); the
    maps of the result are :func:`map_names` of them. The named objects of a caption are
    the visible pixels of the image's objects whose digit word the caption holds; the
    word maps explain the caption's first digit word. Cached as the arrays of
    :meth:`ExplainedCaptions.to_arrays`.
    """
    from tqdm.auto import tqdm

    c = profile.captioning
    layers = list(layers)
    cfg = {**captioner_config(profile), "method": METHOD, "layers": layers,
           "n_explain": int(c.n_explain), "combination": "product-linear"}

    def compute() -> dict[str, np.ndarray]:
        model, vocab, _ = train_or_load_captioner(profile, progress=progress)
        test = load_split(profile, "test")
        ev = evaluate_captioner(profile)
        n = min(int(c.n_explain), len(test))
        device = next(model.parameters()).device
        names = map_names(layers)
        s = test.images.shape[-1]
        maps = np.zeros((n, len(names), s, s), np.float32)
        word_maps = np.zeros_like(maps)
        word_pos = np.full(n, -1, np.int64)
        for i in tqdm(range(n), desc="explain captions", disable=not progress, leave=False):
            ids = vocab.encode([ev.captions[i]], c.max_len).to(device)  # (1, T)
            x = normalize(test.images[i:i + 1].to(device))  # (1, 3, S, S)
            m = caption_maps(model, x, ids, layers=layers)
            maps[i] = torch.cat([m[k] for k in names], dim=1)[0].cpu().numpy()
            pos = word_position(ids[0], vocab, DIGIT_CLASSES)
            if pos is not None:
                word_pos[i] = pos
                wm = caption_maps(model, x, ids, word=pos, layers=layers)
                word_maps[i] = torch.cat([wm[k] for k in names], dim=1)[0].cpu().numpy()
        t = torch.from_numpy(maps)
        mass = np.full((n, len(names)), np.nan)
        word_mass = np.full((n, len(names)), np.nan)
        area = np.full(n, np.nan)
        named_mask = np.zeros((n, s, s), np.uint8)
        if test.objects is not None:
            for i in range(n):
                words = tokenize(ev.captions[i])
                named = set(words) & set(DIGIT_CLASSES)
                mask = test.object_mask(i, named)
                if named and bool(mask.any()):
                    mass[i] = mass_share(t[i], mask).numpy()
                    area[i] = float(mask.double().mean())
                    named_mask[i] = mask.numpy()
                if word_pos[i] >= 0:
                    one = test.object_mask(i, [words[int(word_pos[i])]])
                    if bool(one.any()):
                        word_mass[i] = mass_share(torch.from_numpy(word_maps[i]), one).numpy()
        return {"maps": maps, "word_maps": word_maps, "word_pos": word_pos, "mass": mass,
                "word_mass": word_mass, "named_mask": named_mask,
                "entropy": normalized_entropy(t).numpy(), "half_max": half_max_area(t).numpy(),
                "named_area": area, "images": test.images[:n].numpy(), "index": np.arange(n)}

    return ExplainedCaptions.from_arrays(
        Store(profile.results_dir).get_or_compute("caption_maps", cfg, compute, fmt="npz"))


def _nanmean(a: np.ndarray) -> float:
    """The mean of the finite values (NaN, without a warning, when there is none)."""
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def sharpness_summary(explained: ExplainedCaptions,
                      layers: Sequence[str] = EXPLAINED_LAYERS) -> SharpnessSummary:
    """Per map: the mean over captions of the mass share, entropy, half-max area and word-map mass.

    ``layers`` are the layers ``explained`` was computed at (:func:`explain_captions`'s).
    """
    names = map_names(layers)
    if explained.maps.shape[1] != len(names):
        raise ValueError(f"explained holds {explained.maps.shape[1]} maps per image, but layers {list(layers)} "
                         f"make {len(names)}: pass the layers it was explained at")
    e = explained
    maps = {name: MapSharpness(mass=_nanmean(e.mass[:, j]), entropy=_nanmean(e.entropy[:, j]),
                               half_max=_nanmean(e.half_max[:, j]), word_mass=_nanmean(e.word_mass[:, j]))
            for j, name in enumerate(names)}
    return SharpnessSummary(maps=maps, named_area=_nanmean(e.named_area),
                            n_named=int(np.isfinite(e.named_area).sum()))


def paired_interval(a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the pairs where both are finite, and its 95 % bootstrap interval.

    Returns ``{"difference", "low", "high", "n"}`` (NaN when no pair is finite).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have one shape, got {a.shape} and {b.shape}")
    d = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)  # (n_boot,)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": float(d.mean()), "low": float(low), "high": float(high), "n": int(d.size)}


@torch.no_grad()
def layer_grids(model: Captioner, image_size: int, layers: Sequence[str] = EXPLAINED_LAYERS) -> dict[str, tuple[int, int]]:
    """The ``(h, w)`` grid of each explained layer for a square image of side ``image_size``."""
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, int]] = {}
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape[-2:])))
             for n in layers]
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        p = next(model.parameters())
        model.encoder(torch.zeros(1, 3, image_size, image_size, dtype=p.dtype, device=p.device))
    finally:
        for h in hooks:
            h.remove()
        for m, flag in flags:
            m.training = flag
    return {n: seen[n] for n in layers}


def main(argv: Sequence[str] | None = None) -> None:
    """Train (or restore), evaluate and explain the profile's captioner; one line per result."""
    from gsutils.cli import parse_with_profile
    from gsutils.cli_commands import command_parser

    parser = command_parser("captioning", prog="python -m gsutils.experiments.normgrad.caption_saliency")
    args, profile = parse_with_profile(parser, argv)
    train_or_load_captioner(profile, progress=True, shipped=not args.retrain)
    if args.export:
        print(f"exported to {shipped_network(profile).export(profile.results_dir, threads=1)}")
    ev = evaluate_captioner(profile, progress=True)
    print(", ".join(f"{k} {v:.3f}" for k, v in ev.scores.items()))
    if ev.mentions is not None:
        print(f"object-mention F1 {ev.mentions.f1:.3f} (gate {ev.gate_threshold})")
    summary = sharpness_summary(explain_captions(profile, progress=True))
    for name, v in summary.maps.items():
        print(name, v)
    print(f"named objects: {summary.named_area:.3f} of the image ({summary.n_named} captions)")


if __name__ == "__main__":
    main()
