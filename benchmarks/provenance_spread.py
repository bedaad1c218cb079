"""Cross-kernel spread of the shipped networks' first training steps (the provenance tolerances).

Re-runs the logged first steps of every shipped network of a profile on this
machine's CPU kernels and prints, per network, the relative difference of each
step's loss from the logged one. Run it once as it is and once with the generic
code path forced, to measure the spread that :data:`gsutils.experiments.common.provenance.TOLERANCES`
must cover::

    python benchmarks/provenance_spread.py
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/provenance_spread.py

Prints ``name kind max-step0 max-later`` lines and the largest spread per kind,
and writes them to ``results/benchmarks/provenance_spread-<capability>.json``.
Usage: ``python benchmarks/provenance_spread.py [--profile quick] [--which all|unet|slim|classifier|deeplab|captioner]``
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from gsutils.experiments.common import provenance as pv
from gsutils.experiments.common.shipped import machine
from gsutils.experiments.grid import shipped_traces as grid_traces
from gsutils.experiments.normgrad import shipped_traces as normgrad_traces
from gsutils.paths import results_root
from gsutils.profiles import get_profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--which", default="all")
    a = ap.parse_args()
    prof = get_profile(a.profile, device="cpu", results_dir=results_root() / "benchmarks" / "provenance-runs")
    rows, worst = [], {}
    for t in grid_traces.shipped_traces(prof, a.which) + normgrad_traces.shipped_traces(prof, a.which):
        if not t.logged:
            print(f"{t.name}: no logged first steps (not shipped yet)")
            continue
        d = pv.relative_differences(t.logged, t.rerun())
        later = max(d[1:], default=0.0)
        rows.append({"name": t.name, "kind": t.kind, "step0": d[0], "later": later, "per_step": d})
        w = worst.setdefault(t.kind, {"step0": 0.0, "later": 0.0})
        w["step0"], w["later"] = max(w["step0"], d[0]), max(w["later"], later)
        print(f"{t.name} {t.kind} {d[0]:.2e} {later:.2e}", flush=True)
    here = {**machine(), "threads": torch.get_num_threads(), "forced": {k: os.environ.get(k) for k in
                                                                     ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}}
    for kind, w in worst.items():
        tol = pv.TOLERANCES[kind]
        print(f"largest spread {kind}: step0 {w['step0']:.2e} (tolerance {tol.step0:.0e}), "
              f"later {w['later']:.2e} (tolerance {tol.later:.0e})")
    out = results_root() / "benchmarks" / f"provenance_spread-{here['cpu_capability']}-{a.which}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": here, "worst": worst, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
