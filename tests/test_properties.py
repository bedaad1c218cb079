"""Property tests: the public entry points of ``gsutils.saliency`` and ``gsutils.metrics``.

Hypothesis draws small shapes, float32/float64 inputs, degenerate masks (all
zero, all one), non-finite pixels, one-class models and model/input dtype
mismatches. Every call must either return finite maps of the documented
shape and range, or raise ``ValueError``/``TypeError`` whose message names
one of the call's arguments; a non-finite input must always raise. Tiny
models and few examples keep the module fast (CPU, well under 30 s).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from gsutils.data import boxes as box_geometry
from gsutils.metrics import context_bias, pointing
from gsutils.metrics import segmentation as segm
from gsutils.saliency import extract_aggregate as ea
from gsutils.saliency import gradient, grid

#: more examples (and fresh random ones) with GSUTILS_HYPOTHESIS_EXAMPLES=500
_EXAMPLES = int(os.environ.get("GSUTILS_HYPOTHESIS_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_EXAMPLES or 30, deadline=None, database=None,
                    derandomize=not _EXAMPLES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = st.sampled_from([torch.float32, torch.float64])
#: degenerate cases are drawn often, but most draws stay valid so that the maps get checked
MASKS = st.sampled_from(["random", "random", "random", "pixel", "zeros", "ones"])
PIXELS = st.sampled_from(["uniform", "uniform", "uniform", "constant", "nan", "inf"])


def expect(call, names, check):
    """Run ``call()``; a ValueError/TypeError must name one of ``names``; else ``check(result)``.

    Returns whether the call raised.
    """
    try:
        out = call()
    except (ValueError, TypeError) as err:
        msg = str(err)
        assert any(n in msg for n in names), f"error names none of {names}: {msg}"
        return True
    if check is None:
        pytest.fail(f"expected a ValueError or TypeError, got {type(out).__name__}")
    check(out)
    return False


def _finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def _mask(kind: str, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "zeros":
        return torch.zeros(n, h, w, dtype=torch.bool)
    if kind == "ones":
        return torch.ones(n, h, w, dtype=torch.bool)
    if kind == "pixel":
        m = torch.zeros(n, h, w, dtype=torch.bool)
        m[:, h // 2, w // 2] = True
        return m
    m = torch.rand(n, h, w, generator=gen) < 0.4
    m[:, 0, 0] = True  # never empty, never full: the "random" case is a valid request
    m[:, -1, -1] = False
    return m


def _images(kind: str, shape, dtype, gen: torch.Generator) -> torch.Tensor:
    x = torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
    if kind == "constant":
        x = torch.full(shape, 0.5, dtype=dtype)
    elif kind in ("nan", "inf"):
        x[-1, 0, 0, -1] = float(kind)
    return x


@st.composite
def seg_cases(draw):
    """Images, request masks, classes and a tiny segmentation net (maybe mismatched)."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(3, 7)), draw(st.integers(3, 7))
    k = draw(st.sampled_from([2, 3, 2, 3, 1]))  # K = 1: a one-class "segmentation"
    dtype = draw(DTYPES)
    model_dtype = draw(st.sampled_from([dtype, dtype, dtype, torch.float64 if dtype == torch.float32
                                        else torch.float32]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    pixels, mask = draw(PIXELS), draw(MASKS)
    torch.manual_seed(draw(st.integers(0, 2**16)))
    model = nn.Sequential(nn.Conv2d(c, 3, 3, padding=1), nn.Tanh(), nn.Conv2d(3, k, 1))
    model = model.to(model_dtype).eval()
    return dict(x=_images(pixels, (n, c, h, w), dtype, gen), req=_mask(mask, n, h, w, gen),
                cls=draw(st.sampled_from([0, k - 1, k - 1, k])), model=model, pixels=pixels)


SEG_ARGS = ("model", "images", "requests", "classes")


@SETTINGS
@given(seg_cases())
def test_segmentation_saliency_is_finite_or_a_named_error(case):
    x, req, cls, model = case["x"], case["req"], case["cls"], case["model"]
    n, c, h, w = x.shape
    cfg = grid.GridSaliencyConfig(steps=2, greys=(0.0, 0.5))

    def mask_map(context):
        def check(res):
            m = res.maps
            assert m.shape == (n, h, w) and m.dtype == x.dtype and _finite(m)
            assert m.min() >= 0 and m.max() <= 1
            assert res.grid_masks.shape == (n, *cfg.grid) and _finite(res.loss)
            if context:
                assert torch.all(m[req] == 0)
        return check

    def attribution(a):
        assert a.shape == x.shape and a.dtype == x.dtype and _finite(a)

    def context_map(m):
        assert m.shape == (n, h, w) and _finite(m) and m.min() >= 0 and m.max() <= 1
        assert torch.all(m[req] == 0)

    calls = [
        (lambda: grid.grid_saliency(model, x, req, cls, config=cfg), mask_map(False)),
        (lambda: grid.context_saliency(model, x, req, cls, config=cfg, batch_size=1), mask_map(True)),
        (lambda: gradient.vanilla_gradient(model, x, req, cls), attribution),
        (lambda: gradient.integrated_gradients(model, x, req, cls, steps=2), attribution),
        (lambda: gradient.smoothgrad(model, x, req, cls, samples=2), attribution),
        (lambda: gradient.gradient_context_saliency(model, x, req, cls, "ig", ig_steps=2), context_map),
    ]
    for call, check in calls:
        raised = expect(call, SEG_ARGS, check)
        if case["pixels"] in ("nan", "inf"):
            assert raised, "non-finite images gave maps"


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 2), st.integers(2, 6), st.integers(2, 6), DTYPES, MASKS,
       st.sampled_from(["normal", "zeros", "nan"]))
def test_context_maps_and_probs(n, c, h, w, dtype, mask, values):
    gen = torch.Generator().manual_seed(n * 100 + h * 10 + w)
    req = _mask(mask, n, h, w, gen)
    attr = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64).to(dtype)
    if values == "zeros":
        attr.zero_()
    elif values == "nan":
        attr[0, 0, 0, 0] = float("nan")

    def check(m):
        assert m.shape == (n, h, w) and _finite(m) and m.min() >= 0 and m.max() <= 1
        assert torch.all(m[req] == 0)

    raised = expect(lambda: gradient.context_maps(attr, req), ("attributions", "requests"), check)
    assert raised == (values == "nan")
    logits = torch.randn(n, 3, h, w, generator=gen, dtype=torch.float64).to(dtype)
    probs = grid.segmentation_probs(lambda t: t, logits)
    assert probs.shape == (n, 3, h, w) and _finite(probs)
    torch.testing.assert_close(probs.sum(1), torch.ones(n, h, w, dtype=dtype))
    eroded = grid.erode(req, 3)
    assert eroded.shape == req.shape and not torch.any(eroded & ~req)


NONNEGATIVE = {"gradient", "guided_backprop", "grad_cam", "normgrad", "normgrad_conv",
               "selective_normgrad", "contrastive_excitation_backprop"}
EA_ARGS = ("model", "x", "target", "layer", "method", "classifier_layer")


@SETTINGS
@given(st.integers(1, 2), st.integers(1, 2), st.integers(4, 8), DTYPES,
       st.sampled_from([torch.float32, torch.float64]), st.integers(1, 3),
       st.lists(st.sampled_from(["input", "0", "2"]), min_size=1, max_size=2, unique=True),
       st.lists(st.sampled_from(ea.METHODS), min_size=1, max_size=3, unique=True),
       st.sampled_from(["uniform", "constant", "nan"]), st.booleans())
def test_extract_aggregate_is_finite_or_a_named_error(n, c, s, dtype, model_dtype, k, layers, methods,
                                                      pixels, resize):
    torch.manual_seed(s * 7 + k)
    model = nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, k))
    model = model.to(model_dtype)
    x = _images(pixels if pixels != "uniform" else "uniform", (n, c, s, s), dtype,
                torch.Generator().manual_seed(s))
    target = k - 1

    def check(maps):
        assert set(maps) == {(m, lay) for m in methods for lay in layers}
        for (method, _), m in maps.items():
            assert m.shape[:2] == (n, 1) and m.dtype == x.dtype and _finite(m), method
            if resize:
                assert m.shape[2:] == (s, s)
            if method in NONNEGATIVE:
                assert m.min() >= 0, method

    raised = expect(lambda: ea.extract_aggregate(model, x, target, layers, methods, resize=resize),
                    EA_ARGS, check)
    if pixels == "nan":
        assert raised


# ------------------------------------------------------------------------------ metrics


@SETTINGS
@given(st.integers(0, 3), st.integers(1, 6), st.integers(1, 6), MASKS, MASKS,
       st.sampled_from(["unit", "zeros", "ones", "nan", "big"]), st.booleans())
def test_context_bias_metrics(n, h, w, rmask, bmask, values, as_numpy):
    gen = torch.Generator().manual_seed(n * 97 + h * 7 + w)
    req = _mask(rmask, n, h, w, gen)
    biased = _mask(bmask, n, h, w, gen)
    maps = torch.rand(n, h, w, generator=gen, dtype=torch.float64)
    if values == "zeros":
        maps.zero_()
    elif values == "ones":
        maps.fill_(1.0)
    elif values == "nan" and n:
        maps[0, 0, 0] = float("nan")
    elif values == "big":
        maps *= 5
    if as_numpy:
        maps, req, biased = maps.numpy(), req.numpy(), biased.numpy()

    def per_image(v):
        assert v.shape == (n,) and np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()

    cbd_raised = expect(lambda: context_bias.cbd(maps, req), ("maps", "requests"), per_image)
    if values == "nan" and n:
        assert cbd_raised
    if n == 0:
        assert cbd_raised
        return  # cbl/chance_cbl of an empty batch: see the report
    cbl_raised = expect(lambda: context_bias.cbl(maps, req, biased), ("maps", "requests", "biased"),
                        per_image)
    if values == "nan":
        assert cbl_raised
    per_image(context_bias.chance_cbl(req, biased))


@SETTINGS
@given(st.integers(2, 9), st.integers(2, 9),
       st.lists(st.tuples(*[st.integers(-12, 14)] * 4), min_size=0, max_size=3),
       st.integers(1, 4), MASKS, DTYPES)
def test_pointing_entry_points(h, w, boxes, tolerance, gkind, dtype):
    gen = torch.Generator().manual_seed(h * 31 + w)
    expect(lambda: box_geometry.boxes_to_mask(boxes, h, w), ("box", "height", "width"),
           lambda m: (m.shape == (h, w) and m.dtype == torch.bool) or pytest.fail("mask shape"))
    gt = _mask(gkind, 1, h, w, gen)[0]

    def region_ok(r):
        assert r.shape == (h, w) and r.dtype == torch.bool and not torch.any(gt & ~r)

    raised = expect(lambda: pointing.hit_region(gt, tolerance), ("gt", "tolerance"), region_ok)
    assert raised == (gkind == "zeros")
    sal = torch.rand(h, w, generator=gen, dtype=torch.float64).to(dtype)
    x, y = pointing.map_argmax_point(sal)
    assert 0 <= x < w and 0 <= y < h
    game = pointing.PointingGame(2, tolerance)
    region = pointing.hit_region(torch.ones(h, w, dtype=torch.bool), tolerance)
    outcome = expect(lambda: game.add(sal, gt, 1, region=region), ("gt", "region"),
                     lambda v: v in (1, -1) or pytest.fail("outcome"))
    assert outcome == (gkind == "zeros")  # an empty ground truth raises, region or not

    def accuracies(acc):
        assert set(acc) == set(pointing.SUBSETS)
        assert 0 <= acc["all"] <= 1
        assert math.isnan(acc["difficult"]) or 0 <= acc["difficult"] <= 1

    maps = torch.rand(2, h, w, generator=gen, dtype=torch.float64).to(dtype)
    gts = torch.stack([gt, torch.ones(h, w, dtype=torch.bool)])
    expect(lambda: pointing.pointing_accuracy(maps, gts, [0, 1], 2, difficult=[True, False],
                                              tolerance=tolerance), ("gt", "maps"), accuracies)
    bad = maps.clone()
    bad[0, 0, 0] = float("nan")
    assert expect(lambda: pointing.pointing_accuracy(bad, gts, [0, 1], 2), ("saliency map", "gt"),
                  accuracies)


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), st.integers(1, 4),
       st.sampled_from(["random", "zeros", "ones"]))
def test_segmentation_metrics(n, h, w, k, kind):
    gen = torch.Generator().manual_seed(n * 13 + h * 5 + w + k)
    target = torch.randint(0, k, (n, h, w), generator=gen)
    if kind == "zeros":
        target.zero_()
    elif kind == "ones":
        target.fill_(k - 1)
    logits = torch.randn(n, k, h, w, generator=gen)
    meter = segm.ConfusionMeter(k)
    meter.update(logits, target)
    conf = meter.conf
    assert conf.shape == (k, k) and int(conf.sum()) == n * h * w
    iou = meter.iou()
    assert iou.shape == (k,)
    defined = iou[~np.isnan(iou)]
    assert len(defined) >= 1 and (defined >= 0).all() and (defined <= 1).all()
    assert 0 <= segm.mean_iou(iou) <= 1
    np.testing.assert_array_equal(segm.per_class_iou(logits.argmax(1), target, k), iou)
    assert expect(lambda: segm.confusion_matrix(logits, target, k), ("pred", "target"), None)
    assert expect(lambda: segm.confusion_matrix(target, target, 0), ("num_classes",), None)
