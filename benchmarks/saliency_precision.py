"""What a bfloat16 forward pass changes in the S1.3/S1.4 saliency maps, and how much faster it is.

The quick profile explains its networks with their layers under
``torch.autocast(bfloat16)`` (``SaliencySettings.autocast``; the networks were
trained that way). This benchmark explains the same images of one shipped
network twice in the same run, once at float32 and once at bfloat16, with the
chapters' own function (``compute_context_saliency``: VG, SG, IG and grid
saliency at the S1.2 setting), and prints per method:

    <method>_mean_cbd_float32 / _bfloat16, <method>_mean_cbl_float32 / _bfloat16
    <method>_empty_float32 / _bfloat16          (share of empty maps)
    <method>_map_mean_abs_diff                  (mean |difference| of the maps)
    seconds_float32, seconds_bfloat16, speedup_bfloat16  (wall seconds, same run)

The metrics are what the ledger judges (means over the explained images); the
map differences show where single cells flip (a grid cell close to the 0.2
clipping threshold can end on either side of it).

Usage: ``python benchmarks/saliency_precision.py [--texture 1] [--strength strong]
[--bias-images 8] [--other-images 1] [--threads 1]``
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strength", default="strong", choices=("strong", "weak"))
    ap.add_argument("--texture", type=int, default=1)
    ap.add_argument("--bias-images", type=int, default=8, help="images of the bias digit (default 8)")
    ap.add_argument("--other-images", type=int, default=1, help="images of each other digit (default 1)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.bias_images < 1 or a.other_images < 0 or a.threads < 1:
        ap.error("--bias-images and --threads must be >= 1, --other-images >= 0")

    import numpy as np
    import torch

    import gsutils
    from gsutils.experiments.grid.context_results import METHODS
    from gsutils.experiments.grid.context_saliency import compute_context_saliency, grid_config, select_images
    from gsutils.models.precision import autocast_model
    from gsutils.profiles import get_profile

    torch.set_num_threads(a.threads)
    prof = get_profile("quick", device="cpu")
    prof = dataclasses.replace(prof, saliency=dataclasses.replace(prof.saliency, autocast=None))
    net = gsutils.load_network(prof, bias=a.strength, digit=2, texture=a.texture)
    data = gsutils.load_test_set(prof, bias=a.strength, digit=2, texture=a.texture)
    index = select_images(data.digits, [a.bias_images if d == 2 else a.other_images for d in range(10)])
    s = prof.saliency
    out = {}
    for name in ("float32", "bfloat16"):
        model = autocast_model(net, None if name == "float32" else name)
        t0 = time.perf_counter()
        out[name] = compute_context_saliency(model, data, index, grid=grid_config(prof), ig_steps=s.ig_steps,
                                             sg_samples=s.sg_samples, batch_size=s.batch_size, seed=prof.seed,
                                             example_digit=2, examples=len(index))
        print(f"seconds_{name}: {time.perf_counter() - t0:.1f}")
    f, b = out["float32"], out["bfloat16"]
    print(f"speedup_bfloat16: {float(f['seconds']) / float(b['seconds']):.2f}")
    on = f["digits"] == 2
    biased = on & f["is_biased"]
    for m, method in enumerate(METHODS):
        for name, r in out.items():
            print(f"{method}_mean_cbd_bias_digit_{name}: {r['cbd'][m][on].mean():.4f}")
            if (~on).any():
                print(f"{method}_mean_cbd_other_digits_{name}: {r['cbd'][m][~on].mean():.4f}")
            print(f"{method}_mean_cbl_{name}: {r['cbl'][m][biased].mean():.4f}")
            print(f"{method}_empty_{name}: {r['empty'][m].mean():.3f}")
        diff = np.abs(f["example_maps"][m] - b["example_maps"][m])  # the bias digit's maps
        print(f"{method}_map_mean_abs_diff_bias_digit: {diff.mean():.4f}")
    print(f"(network {a.strength} bias, digit 2, texture {a.texture}; {len(index)} images)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
