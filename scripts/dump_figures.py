"""Write every PNG output of executed notebooks to a folder, for looking at them.

    python scripts/dump_figures.py book/grid_saliency/01_toy_dataset.ipynb --out /tmp/figs
"""

import argparse
import base64
import json
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("notebooks", nargs="+")
p.add_argument("--out", default="figures")
a = p.parse_args()
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
for nb in a.notebooks:
    cells = json.loads(Path(nb).read_text())["cells"]
    k = 0
    for i, c in enumerate(cells):
        for o in c.get("outputs", []):
            png = o.get("data", {}).get("image/png")
            if png:
                f = out / f"{Path(nb).stem}_{i:02d}_{k}.png"
                f.write_bytes(base64.b64decode(png))
                print(f)
                k += 1
