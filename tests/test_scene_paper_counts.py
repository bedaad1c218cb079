"""S2: Tables S1/S2 beside the supplement's counts, and the Fig. S12 and Fig. S15 rows, on made-up results."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from scene_results import street_result

from gsutils.data.cityscapes import TRAIN_CLASSES
from gsutils.experiments.grid import scene_claims as sc
from gsutils.experiments.grid.street_context import StreetContextResult
from gsutils.references import TABLE_S1_COUNTS, TABLE_S2_COUNTS

RIDER, BICYCLE, CAR, PERSON, ROAD = (TRAIN_CLASSES.index(c) for c in ("rider", "bicycle", "car", "person", "road"))


def _res(n_riders: int = 6, on_bike: int = 6, n_empty_cars: int = 2) -> StreetContextResult:
    """Frames of 8 x 16: a rider request on the left (size grows with the frame), a bicycle right of it,
    road elsewhere; rider maps on the bicycle for the first ``on_bike`` frames, on the road after;
    then ``n_empty_cars`` large car requests with empty maps."""
    h, w = 8, 16
    frames, masks, maps, cls, gt_cls, kept, empty = [], [], [], [], [], [], []
    gts = []
    for f in range(n_riders):
        gt = np.full((h, w), ROAD)
        rider = np.zeros((h, w), dtype=bool)
        rider[: 2 + f, :3] = True
        gt[rider] = RIDER
        gt[:, 4:6] = BICYCLE
        m = np.zeros((h, w), dtype=np.float32)
        if f < on_bike:
            m[:, 4:6] = 1.0
        else:
            m[:, 10:] = 1.0
        gts.append(gt)
        frames.append(f)
        masks.append(rider)
        maps.append(m)
        cls.append(RIDER)
        gt_cls.append(RIDER)
        kept.append(True)
        empty.append(False)
    for k in range(n_empty_cars):
        gt = np.full((h, w), ROAD)
        car = np.zeros((h, w), dtype=bool)
        car[:, :12] = True
        gt[car] = CAR
        gts.append(gt)
        frames.append(n_riders + k)
        masks.append(car)
        maps.append(np.zeros((h, w), dtype=np.float32))
        cls.append(CAR)
        gt_cls.append(CAR)
        kept.append(False)
        empty.append(True)
    n = len(frames)
    kept = np.array(kept)
    empty = np.array(empty)
    return street_result(data=SimpleNamespace(val_y=torch.from_numpy(np.stack(gts))), frame=np.array(frames),
                         masks=np.stack(masks), maps=np.stack(maps).astype(np.float16), cls=np.array(cls),
                         gt_cls=np.array(gt_cls), kept=kept, dropped_empty=empty, empty=empty,
                         dropped_loss=np.zeros(n, bool), all_cls=np.array(cls + [PERSON]),
                         all_gt_cls=np.array(gt_cls + [RIDER]), all_correct=np.array([True] * n + [False]),
                         all_size=np.ones(n + 1, int))


def test_table_s1_beside_the_supplement():
    t = sc.table_s1_vs_paper(_res())
    assert list(t["request class"]) == list(TABLE_S1_COUNTS)
    rider = t.set_index("request class").loc["rider"]
    assert rider["paper: images kept"] == 39
    assert (rider["ours: requests"], rider["ours: kept"], rider["ours: images kept"]) == (6, 6, 6)
    car = t.set_index("request class").loc["car"]
    assert (car["paper: images kept"], car["ours: explained"], car["ours: kept"]) == (249, 2, 0)


def test_table_s2_beside_the_supplement():
    t = sc.table_s2_vs_paper(_res()).set_index(["GT class", "predicted class"])
    assert len(t) == len(TABLE_S2_COUNTS)
    assert t.loc[("rider", "person"), "paper: images kept"] == 67
    assert t.loc[("rider", "person"), "ours: requests"] == 1  # the erroneous request
    assert t.loc[("rider", "rider"), "ours: images kept"] == 6


def test_fig_s12_size_claim():
    row = sc.size_claim(_res(), gate_ok=True)
    assert row["passed"] is True and row["measured"]["n"] == 6
    assert row["measured"]["small: share on bikes"] == 1.0 and row["measured"]["large: share on bikes"] == 1.0
    # the two largest riders' maps go to the road: the large half fails
    frames = _res(on_bike=4)
    sizes = [int(m.sum()) for m in frames.masks[:6]]
    assert sizes[4] > sizes[0]  # the frames after on_bike hold the larger requests
    assert sc.size_claim(frames, gate_ok=True)["passed"] is False
    assert sc.size_claim(_res(n_riders=3, on_bike=3), gate_ok=True)["passed"] is None
    assert sc.size_claim(_res(), gate_ok=False)["passed"] is None


def test_fig_s15_empty_map_claim():
    row = sc.empty_map_claim(_res(), gate_ok=True)
    assert row["passed"] is True
    assert row["measured"]["empty by class"] == {"car": 2}
    assert row["measured"]["median size empty px"] > row["measured"]["median size non-empty px"]
    assert sc.empty_map_claim(_res(n_empty_cars=0), gate_ok=True)["passed"] is False
    assert sc.empty_map_claim(_res(), gate_ok=False)["passed"] is None
