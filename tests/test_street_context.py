"""The S2 pipeline's pieces in closed form, and the DeepLab builder and checkpoint loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gsutils.data.cityscapes import IGNORE
from gsutils.experiments.grid.street_context import (Request, ScaledThresholds, baseline_masks, context_shares,
                                                     request_masks, scaled_thresholds, select_requests)
from gsutils.models.deeplab import deeplab, load_deeplab_checkpoint


def test_thresholds_are_the_supplements_at_full_size_and_scale_with_area():
    assert scaled_thresholds(1024, 2048) == ScaledThresholds(min_correct=10_000, min_erroneous=625,
                                                             baseline_budget=400_000)
    assert scaled_thresholds(64, 128) == ScaledThresholds(min_correct=39, min_erroneous=2, baseline_budget=1562)


def test_request_masks_split_correct_and_erroneous_after_erosion():
    gt = np.zeros((20, 20), dtype=np.int64)
    pred = np.zeros((20, 20), dtype=np.int64)
    pred[2:9, 2:9] = 5  # 7x7 predicted class 5 ...
    gt[2:9, 2:9] = 5  # ... correctly: eroded to 5x5 = 25 px
    pred[12:17, 12:17] = 5  # 5x5 predicted 5 where the ground truth is 3: eroded 3x3 = 9 px
    gt[12:17, 12:17] = 3
    pred[0, 19] = 5  # a single pixel: eroded away
    gt[0, 19] = IGNORE
    reqs = request_masks(pred, gt, frame=4, thresholds=ScaledThresholds(25, 9, 1))
    fives = [r for r in reqs if r.cls == 5]
    assert [(r.correct, r.size, r.gt_cls, r.frame) for r in fives] == [(True, 25, 5, 4), (False, 9, 3, 4)]
    strict = request_masks(pred, gt, 0, ScaledThresholds(26, 10, 1))
    assert not [r for r in strict if r.cls == 5]
    with pytest.raises(ValueError, match="shape"):
        request_masks(pred, gt[:5], 0, ScaledThresholds(1, 1, 1))


def test_capped_selection_prefers_correct_and_large_requests():
    def req(cls, correct, size):
        m = np.zeros(100, dtype=bool)
        m[:size] = True
        return Request(0, cls, cls, correct, m)

    reqs = [req(12, False, 50), req(12, True, 5), req(12, True, 9), req(11, True, 3), req(0, True, 80)]
    assert select_requests(reqs, ("rider",), 2) == [1, 2]
    assert select_requests(reqs, ("rider", "person"), 0) == [0, 1, 2, 3]
    assert select_requests(reqs, (), 1) == [2, 3, 4]
    with pytest.raises(ValueError, match="unicorn"):
        select_requests(reqs, ("unicorn",), 1)


def test_baseline_is_a_ring_sharing_the_budget():
    r = np.zeros((9, 9), dtype=bool)
    r[4, 4] = True
    (ring,) = baseline_masks([r], budget=8)
    assert ring.sum() == 8 and not (ring & r).any()  # one 3x3 dilation: the 8 neighbours
    (ring,) = baseline_masks([r], budget=9)
    assert ring.sum() == 24  # two dilations
    a, b = r.copy(), np.zeros_like(r)
    b[0, 0] = True
    ra, rb = baseline_masks([a, b], budget=16)  # 8 px each
    assert ra.sum() == 8  # 8 px each: one dilation for the centre pixel
    assert rb.sum() == 8  # the corner's first ring (3 px, clipped by the frame) is short: a second dilation
    assert baseline_masks([], 10) == []


def test_context_shares_are_mass_fractions():
    gt = np.array([[0, 0, 1], [2, IGNORE, 1]])
    w = np.array([[1.0, 1.0, 2.0], [0.0, 5.0, 0.0]])
    sh = context_shares(w, gt, classes=3)
    assert np.allclose(sh, [0.5, 0.5, 0.0])
    assert np.isnan(context_shares(np.zeros_like(w), gt, classes=3)).all()


def test_deeplab_has_deeplabs_atrous_rates_and_loads_smp_state_dicts(tmp_path):
    torch.manual_seed(0)
    m = deeplab("mobilenet_v2_035", 5, decoder_channels=16).eval()
    rates = [mod.dilation[0] for mod in m.net.decoder.modules()
             if isinstance(mod, torch.nn.Conv2d) and mod.dilation[0] > 1]
    assert sorted(set(rates)) == [6, 12, 18]
    x = torch.rand(2, 3, 32, 64)
    y = m(x)
    assert y.shape == (2, 5, 32, 64)
    torch.save(m.net.state_dict(), tmp_path / "smp.pt")
    other = load_deeplab_checkpoint(deeplab("mobilenet_v2_035", 5, decoder_channels=16).eval(), tmp_path / "smp.pt")
    assert torch.equal(other(x), y)
    with pytest.raises(ValueError, match="does not fit"):
        load_deeplab_checkpoint(deeplab("mobilenet_v2_035", 7, decoder_channels=16), tmp_path / "smp.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_deeplab_checkpoint(m, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="multiples of 16"):
        m(torch.rand(1, 3, 30, 64))


def test_shipped_network_restores_only_with_equal_config(tmp_path, monkeypatch):
    import json

    from gsutils.experiments.common import shipped
    from gsutils.io import write_checked

    monkeypatch.setattr(shipped, "SHIPPED_ROOT", tmp_path / "checkpoints")
    src = tmp_path / "checkpoints" / "quick" / "deeplab-x"
    src.mkdir(parents=True)
    write_checked(src / "model.pt", b"weights")
    (src / "config.json").write_text(json.dumps({"recipe": {"epochs": 40}, "data": "k", "version": 1}))
    (src / "history.json").write_text("[]")

    def net(epochs: int) -> shipped.ShippedNetwork:
        return shipped.ShippedNetwork("deeplab", "quick", {"recipe": {"epochs": epochs}, "data": "k", "version": 1},
                                      "deeplab-x")

    results = tmp_path / "results"
    out = results / "scenes" / "deeplab-x"
    assert net(40).target(results) == out
    with pytest.warns(UserWarning, match="config differs"):
        assert not net(41).restore(results)
    assert not out.exists()
    assert net(40).restore(results)
    assert (out / "model.pt").read_bytes() == b"weights"
    (src / "model.pt").write_bytes(b"tampered")
    with pytest.warns(UserWarning, match="ignoring shipped"):  # the same network, not yet restored elsewhere
        assert not net(40).restore(tmp_path / "elsewhere")


def test_result_round_trips_through_the_store_in_its_stored_form(tmp_path):
    from scene_results import street_result

    from gsutils.experiments.common.store import Store
    from gsutils.experiments.grid.street_context import StreetContextResult

    masks = np.zeros((3, 4, 8), dtype=bool)
    masks[:, 1:3, 2:5] = True
    res = street_result(cls=np.array([12, 12, 13]), masks=masks, kept=np.array([True, False, True]),
                        grid_shares=np.random.default_rng(0).random((3, 19)))
    arrays = res.to_arrays()
    assert set(arrays) == set(StreetContextResult.array_names()) and "model" not in arrays
    back = Store(tmp_path).get_or_compute("street_context", {"t": 1}, lambda: arrays, fmt="npz")
    assert set(back) == set(arrays)  # the .npz holds one array per field, under the field's name
    again = StreetContextResult.from_arrays(back, model=res.model, history=res.history, data=res.data,
                                            thresholds=res.thresholds, grid_config=res.grid_config)
    for name, value in arrays.items():
        np.testing.assert_array_equal(getattr(again, name), value)
    assert again.iou == res.iou and again.miou == res.miou == 1.0
    with pytest.raises(AttributeError):
        again.cls = np.zeros(3)  # frozen
    with pytest.raises(ValueError, match=r"missing \['kept'\], unexpected \['extra'\]"):
        StreetContextResult.from_arrays({**{k: v for k, v in arrays.items() if k != "kept"}, "extra": arrays["cls"]},
                                        model=None, history=[], data=None, thresholds=res.thresholds,
                                        grid_config=res.grid_config)


def test_s13_views_and_gallery_indices_read_the_result():
    from types import SimpleNamespace

    from scene_results import street_result

    from gsutils.data.cityscapes import TRAIN_CLASSES
    from gsutils.experiments.grid.street_context import S13Views, gallery_indices, s13_views

    torch.manual_seed(0)
    model = deeplab("mobilenet_v2_035", len(TRAIN_CLASSES), decoder_channels=16).eval()
    x = torch.rand(2, 3, 32, 64)
    masks = np.zeros((3, 32, 64), dtype=bool)
    masks[:, 8:20, 10:30] = True
    maps = np.zeros((3, 32, 64), dtype=np.float16)
    maps[:, :4] = 1.0
    rider, car = TRAIN_CLASSES.index("rider"), TRAIN_CLASSES.index("car")
    res = street_result(cls=np.array([car, rider, rider]), masks=masks, maps=maps, frame=np.array([0, 1, 1]),
                        kept=np.array([False, False, True]), dropped_empty=np.array([True, False, False]),
                        grey=np.array([0.5, 0.25, 0.75], np.float32), model=model,
                        data=SimpleNamespace(val_x=x, val_y=torch.zeros(2, 32, 64, dtype=torch.long)))
    assert gallery_indices(res) == [2, 0]  # the first kept rider (no kept person, car, sign), the first empty map
    assert gallery_indices(res, ("car",)) == [0]
    v = s13_views(res, 2)
    assert isinstance(v, S13Views)
    assert v.input.shape == v.perturbed.shape == v.optimised.shape == (3, 32, 64)
    assert v.input_probs.shape == (len(TRAIN_CLASSES), 32, 64) and v.map.shape == (32, 64)
    np.testing.assert_allclose(v.input_probs.sum(0), 1, atol=1e-5)
    inside, outside = masks[2], ~masks[2] & (maps[2] == 0)
    np.testing.assert_array_equal(v.perturbed[:, inside], x[1].numpy()[:, inside])
    assert np.all(v.perturbed[:, ~masks[2]] == 0.75)  # the context replaced by the chosen grey
    np.testing.assert_array_equal(v.optimised[:, outside], v.perturbed[:, outside])
    np.testing.assert_allclose(v.optimised[:, :4], x[1].numpy()[:, :4], atol=1e-6)  # kept where M* = 1
