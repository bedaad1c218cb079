"""Extract & Aggregate engine vs a naive one-(method, layer)-per-backward-pass loop.

For one model (VGG16 with torchvision's module names, channels scaled by
``--width``) and a batch of images, time getting every method's map at every
candidate layer (the input and the last ReLU of each block; ``normgrad_conv``
at the convolution before each of those ReLUs):

- engine: :func:`extract_aggregate` once for the nine methods at the six
  candidate layers, and once for ``normgrad_conv`` at the five convolutions;
- naive: one call per (method, layer), each with its own forward and backward
  pass(es), as a one-layer tool such as TorchRay works.

Both run in the same process on the same inputs; the maps are checked to be
equal. Prints one line, ``extract_aggregate_speedup_vs_naive: N`` (naive time
over engine time, the median of ``--repeats`` runs each); details go to stderr.

Usage: ``python benchmarks/extract_aggregate.py [--width 0.25] [--size 96] [--batch 8]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from gsutils.models.classifiers import CANDIDATE_LAYERS, build_classifier
from gsutils.saliency.extract_aggregate import METHODS, extract_aggregate, saliency

CONV_LAYERS = ("features.2", "features.7", "features.14", "features.21", "features.28")


def _engine(model, x, target, layers, methods):
    maps = extract_aggregate(model, x, target, layers, methods)
    maps.update(extract_aggregate(model, x, target, CONV_LAYERS, ["normgrad_conv"]))
    return maps


def _naive(model, x, target, layers, methods):
    maps = {}
    for method in methods:
        for layer in layers:
            maps[method, layer] = saliency(model, x, target, layer, method)
    for layer in CONV_LAYERS:
        maps["normgrad_conv", layer] = saliency(model, x, target, layer, "normgrad_conv")
    return maps


def _timed(fn, *args) -> tuple[float, dict]:
    if args[1].device.type == "cuda":
        torch.cuda.synchronize(args[1].device)
    t0 = time.perf_counter()
    out = fn(*args)
    if args[1].device.type == "cuda":
        torch.cuda.synchronize(args[1].device)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.25, help="VGG16 channel multiplier")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args(argv)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_classifier("vgg16", num_classes=10, width=args.width).eval().to(args.device)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=g).to(args.device)
    target = torch.arange(args.batch) % 10
    layers = list(CANDIDATE_LAYERS["vgg16"])
    methods = [m for m in METHODS if m != "normgrad_conv"]
    n_maps = len(methods) * len(layers) + len(CONV_LAYERS)

    _timed(_engine, model, x, target, layers, methods)  # warm-up
    engine_t, naive_t = [], []
    for _ in range(args.repeats):
        t, fast = _timed(_engine, model, x, target, layers, methods)
        engine_t.append(t)
        t, slow = _timed(_naive, model, x, target, layers, methods)
        naive_t.append(t)
    worst = max(float((fast[k] - slow[k]).abs().max() / slow[k].abs().max().clamp_min(1e-30))
                for k in slow)
    te, tn = statistics.median(engine_t), statistics.median(naive_t)
    print(f"vgg16 width {args.width}, {args.batch} images of {args.size}px on {args.device}: "
          f"{n_maps} maps per image; engine {te:.3f} s, naive {tn:.3f} s "
          f"(median of {args.repeats}); largest relative difference {worst:.1e}", file=sys.stderr)
    speedup = tn / te
    print(f"extract_aggregate_speedup_vs_naive: {speedup:.1f}")
    return speedup


if __name__ == "__main__":
    main()
