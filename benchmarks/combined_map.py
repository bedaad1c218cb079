"""Cost of a combined multi-layer map vs the sum of its single-layer maps.

Section C combines the maps of five layers (VGG16 ``features.3/8/15/22/29``)
into one (:func:`gsutils.saliency.combine.combine_maps`). With the Extract &
Aggregate engine all five layers come out of one forward and one backward
pass, so the combined map should cost about as much as *one* single-layer
map, not five. In the same process, on the same inputs:

- ``single``: one single-layer map (:func:`extract_aggregate` for one layer);
- ``singles_sum``: the five single-layer maps, one call each (what a one-layer
  tool would do before combining);
- ``combined``: one call for the five layers plus the weighted product.

Prints ``name: value`` lines: the median seconds of each over ``--repeats``
runs, and the ratios ``combined_over_singles_sum`` and ``combined_over_single``.

Usage: ``python benchmarks/combined_map.py [--width 0.125] [--size 112] [--batch 8] [--repeats 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gsutils.models.classifiers import CANDIDATE_LAYERS, build_classifier
from gsutils.saliency.combine import combine_maps
from gsutils.saliency.extract_aggregate import extract_aggregate

LAYERS = tuple(layer for layer in CANDIDATE_LAYERS["vgg16"] if layer != "input")
METHOD = "selective_normgrad"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.125)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier("vgg16", 10, a.width, vgg_pool=1).eval()
    x = torch.rand(a.batch, 3, a.size, a.size)
    target = torch.randint(0, 10, (a.batch,))
    weights = [1.0] * len(LAYERS)
    size = (a.size, a.size)

    def single():
        return extract_aggregate(model, x, target, [LAYERS[-1]], [METHOD], resize=False)

    def singles_sum():
        return [extract_aggregate(model, x, target, [layer], [METHOD], resize=False)[METHOD, layer]
                for layer in LAYERS]

    def combined():
        maps = extract_aggregate(model, x, target, list(LAYERS), [METHOD], resize=False)
        return combine_maps([maps[METHOD, layer] for layer in LAYERS], weights, "product", size=size)

    # the combined map equals the product of the separately computed maps
    ref = combine_maps(singles_sum(), weights, "product", size=size)
    torch.testing.assert_close(combined(), ref)
    single()  # warm-up
    t_single = _median_time(single, a.repeats)
    t_sum = _median_time(singles_sum, a.repeats)
    t_comb = _median_time(combined, a.repeats)
    print(f"single_layer_map_s: {t_single:.4f}")
    print(f"singles_sum_s: {t_sum:.4f}")
    print(f"combined_map_s: {t_comb:.4f}")
    print(f"combined_over_singles_sum: {t_comb / t_sum:.3f}")
    print(f"combined_over_single: {t_comb / t_single:.3f}")


if __name__ == "__main__":
    main()
