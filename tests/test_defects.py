"""Issue 11, "no silent wrong results, no lost work": one test per defect.

1. the book executor never serves another profile's notebook, and says which profile a page shows;
2. ``boxes_to_mask`` clips boxes and rejects degenerate or off-image ones (no wrap-around);
3. valid cached models and results are kept, corrupt ones moved aside, never deleted;
4. bad saliency inputs (NaN pixels, one class, dtype mismatch) raise instead of giving NaN/zero maps;
5. command lines report user errors in one line with exit status 2, and say when they fall back to the CPU;
6. smaller ones: ``--n 0``, ignored options, ``cbd`` on no image, file modes, empty pointing ground truth.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

# ------------------------------------------------------------------------------ 1. book profiles

HEADER = ("# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n"
          "#     language: python\n#     name: python3\n# ---\n\n")


@pytest.fixture
def fake_book(tmp_path, monkeypatch):
    """A one-chapter book whose "execution" copies the notebook (no kernel is started)."""
    import nbformat
    import papermill

    from gsutils import book

    part = tmp_path / "book" / "p"
    part.mkdir(parents=True)
    (part / "01_x.py").write_text(
        HEADER + "# %% [markdown]\n# # A chapter\n#\n# Its introduction.\n\n"
        '# %% tags=["parameters"]\nprofile = "quick"\n\n# %%\nprint(profile)\n')
    runs: list[str] = []

    def fake_execute(src, dst, parameters, **kw):
        nb = nbformat.read(src, as_version=4)
        nb.metadata["papermill"] = {"parameters": parameters}
        nbformat.write(nb, dst)
        runs.append(parameters["profile"])

    monkeypatch.setattr(book, "BOOK", tmp_path / "book")
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    return book, part / "01_x.ipynb", tmp_path / "results", runs


def test_book_never_serves_another_profiles_notebook(fake_book):
    book, out, results, runs = fake_book
    quick = dict(profile="quick", device="auto", seed=0, data_root="")
    gpu = dict(quick, profile="gpu")
    assert book.execute("p/01_x", quick, results / "quick" / "executed", "lib") == "ran"
    assert book.execute("p/01_x", gpu, results / "gpu" / "executed", "lib") == "ran"
    assert book.notebook_record(out)["profile"] == "gpu"
    # back to quick: its own copy comes back, not the gpu notebook marked "cached"
    assert book.execute("p/01_x", quick, results / "quick" / "executed", "lib") == "restored"
    assert book.notebook_record(out)["profile"] == "quick"
    assert book.execute("p/01_x", quick, results / "quick" / "executed", "lib") == "cached"
    assert runs == ["quick", "gpu"]
    # a changed library invalidates the copy: executed again
    assert book.execute("p/01_x", gpu, results / "gpu" / "executed", "lib2") == "ran"
    assert runs == ["quick", "gpu", "gpu"]


def test_each_executed_page_names_its_profile(fake_book):
    import nbformat

    book, out, results, _ = fake_book
    params = dict(profile="gpu", device="cuda", seed=3, data_root="")
    book.execute("p/01_x", params, results / "gpu" / "executed", "lib")
    nb = nbformat.read(out, as_version=4)
    # the title stays first, the note follows it, then the rest of the first cell
    assert nb.cells[0].source == "# A chapter"
    note = nb.cells[1]
    assert book.PROFILE_TAG in note.metadata["tags"]
    assert "**gpu** profile" in note.source and "seed 3" in note.source
    assert note.source.startswith("```{note}") and note.source.rstrip().endswith("```")
    assert nb.cells[2].source == "Its introduction."
    assert nb.metadata["gsutils"]["profile"] == "gpu"


def test_profile_note_is_not_repeated_and_goes_first_without_a_title():
    import nbformat

    from gsutils import book

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    book.inject_profile(nb, {"profile": "quick"}, "s1")
    book.inject_profile(nb, {"profile": "paper"}, "s2")
    notes = [c for c in nb.cells if book.PROFILE_TAG in c.metadata.get("tags", [])]
    assert len(notes) == 1 and nb.cells[0] is notes[0] and "**paper**" in notes[0].source
    assert nb.metadata["gsutils"] == {"profile": "paper", "params": {"profile": "paper"}, "stamp": "s2"}


def test_book_summary_flags_mixed_profiles(fake_book):
    book, _, results, _ = fake_book
    book.execute("p/01_x", dict(profile="gpu"), results / "gpu" / "executed", "lib")
    line, mixed = book.profile_summary(book.book_profiles(["p/01_x"]))
    assert not mixed and "'gpu'" in line
    line, mixed = book.profile_summary({"a": "gpu", "b": "quick", "c": None})
    assert mixed and "'quick': b" in line and "unknown profile: c" in line


# ------------------------------------------------------------------------------ 2. boxes


def test_boxes_are_clipped_and_off_image_boxes_rejected():
    from gsutils.data.boxes import boxes_to_mask

    with pytest.raises(ValueError, match=r"box 0 = \[-5, -5, -2, -2\].*outside"):
        boxes_to_mask([[-5, -5, -2, -2]], 32, 32)  # used to wrap around: 961 pixels
    with pytest.raises(ValueError, match="box 1 .*outside"):
        boxes_to_mask([[0, 0, 1, 1], [32, 0, 40, 5]], 32, 32)
    with pytest.raises(ValueError, match=r"box 0 = \(5, 1, 2, 3\).*xmax < xmin"):
        boxes_to_mask([(5, 1, 2, 3)], 10, 10)
    m = boxes_to_mask([[-3, -1, 1, 2]], 8, 8)  # clipped to x 0..1, y 0..2
    assert int(m.sum()) == 6 and bool(m[:3, :2].all())
    m = boxes_to_mask(torch.tensor([[6, 6, 20, 20]]), 8, 8)
    assert int(m.sum()) == 4


def test_voc_box_at_the_image_border_is_clipped():
    from gsutils.data.voc import VOC_CLASSES, VOCSample, objects_from_annotation

    # the XML's 1-based 0 (seen in the wild) becomes -1 after the shift
    ann = {"annotation": {"object": [{"name": "cat", "difficult": "0", "bndbox": {
        "xmin": "0", "ymin": "0", "xmax": "4", "ymax": "3"}}]}}
    objs = objects_from_annotation(ann, VOC_CLASSES)
    assert objs[0].box == (-1, -1, 3, 2)
    sample = VOCSample("x", torch.zeros(3, 6, 6), torch.zeros(20), objs)
    assert int(sample.gt_mask(VOC_CLASSES.index("cat")).sum()) == 4 * 3


# ------------------------------------------------------------------------------ 3. no lost work


def test_store_keeps_an_entry_without_sidecar_and_moves_corrupt_ones_aside(tmp_path):
    from gsutils.experiments.common.store import Store

    store = Store(tmp_path)
    cfg = {"a": 1}
    assert store.get_or_compute("k", cfg, lambda: {"v": 1}) == {"v": 1}
    path = store.path("k", cfg, "json")
    side = path.with_name(path.name + ".sha256")
    side.unlink()

    def never():
        raise AssertionError("a valid entry was recomputed")

    with pytest.warns(UserWarning, match="no checksum sidecar"):
        assert store.get_or_compute("k", cfg, never) == {"v": 1}
    assert side.exists() and path.exists()

    path.write_bytes(b'{"v": 2')  # truncated
    with pytest.warns(UserWarning, match="moved aside"):
        assert store.get_or_compute("k", cfg, lambda: {"v": 3}) == {"v": 3}
    aside = list(path.parent.glob(path.name + ".corrupt-*"))
    assert [p.read_bytes() for p in aside if not p.name.endswith(".sha256")] == [b'{"v": 2']


def test_store_entry_of_another_config_is_moved_aside(tmp_path):
    from gsutils.experiments.common.store import Store

    store = Store(tmp_path)
    store.get_or_compute("k", {"a": 1}, lambda: [1])
    conf = store.path("k", {"a": 1}, "json").with_suffix(".config.json")
    conf.write_text(json.dumps({"a": 2}))
    with pytest.warns(UserWarning, match="differs"):
        assert store.get_or_compute("k", {"a": 1}, lambda: [2]) == [2]


def _saved_tiny_model(tmp_path):
    from gsutils.data.toy import BiasConfig
    from gsutils.experiments.grid import segmentation as seg
    from gsutils.models.unet import build_unet
    from gsutils.profiles import get_profile

    profile = get_profile("quick", device="cpu", results_dir=tmp_path / "res")
    run = seg.SegRun(BiasConfig(), "tiny", 0)
    out = seg.model_dir(profile, run)
    out.mkdir(parents=True)
    model = build_unet("tiny", seg.NUM_CLASSES, 1, seed=1)
    seg._save_final(out, model, seg.train_config(profile, run), [])
    return seg, profile, run, out / "model.pt", model


def test_load_trained_keeps_a_valid_model_without_its_sidecar(tmp_path):
    seg, profile, run, path, model = _saved_tiny_model(tmp_path)
    path.with_name("model.pt.sha256").unlink()
    with pytest.warns(UserWarning, match="sidecar"):
        loaded = seg.load_trained(profile, run)
    assert loaded is not None and path.exists() and path.with_name("model.pt.sha256").exists()
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert seg.load_trained(profile, run) is not None  # now quietly


def test_load_trained_moves_a_corrupt_model_aside(tmp_path):
    seg, profile, run, path, _ = _saved_tiny_model(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="moved aside"):
        assert seg.load_trained(profile, run) is None
    assert not path.exists()
    aside = [p for p in path.parent.glob("model.pt.corrupt-*") if not p.name.endswith(".sha256")]
    assert len(aside) == 1 and aside[0].read_bytes() == data[: len(data) // 2]


def test_load_trained_moves_a_model_of_another_config_aside(tmp_path):
    seg, profile, run, path, _ = _saved_tiny_model(tmp_path)
    conf = path.with_name("config.json")
    conf.write_text(json.dumps(dict(json.loads(conf.read_text()), seed=99)))
    with pytest.warns(UserWarning, match="differs"):
        assert seg.load_trained(profile, run) is None
    assert list(path.parent.glob("model.pt.corrupt-*"))


# ------------------------------------------------------------------------------ 4. saliency inputs


class Seg(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, k, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _batch(dtype=torch.float32):
    x = torch.rand(2, 1, 8, 8, dtype=dtype)
    req = torch.zeros(2, 8, 8, dtype=torch.bool)
    req[:, 2:5, 2:5] = True
    return x, req


def _seg_methods():
    from gsutils.saliency.gradient import (gradient_context_saliency, integrated_gradients,
                                           smoothgrad, vanilla_gradient)
    from gsutils.saliency.grid import GridSaliencyConfig, context_saliency, grid_saliency

    cfg = GridSaliencyConfig(steps=2)
    return {
        "grid": lambda m, x, r: grid_saliency(m, x, r, 1, config=cfg).maps,
        "context": lambda m, x, r: context_saliency(m, x, r, 1, config=cfg).maps,
        "vg": lambda m, x, r: vanilla_gradient(m, x, r, 0),
        "ig": lambda m, x, r: integrated_gradients(m, x, r, 0, steps=2),
        "sg": lambda m, x, r: smoothgrad(m, x, r, 0, samples=2),
        "ctx-vg": lambda m, x, r: gradient_context_saliency(m, x, r, 0, "vg"),
    }


@pytest.mark.parametrize("name", list(_seg_methods()))
def test_saliency_rejects_nan_images_single_class_and_dtype_mismatch(name):
    run = _seg_methods()[name]
    x, req = _batch()
    x_bad = x.clone()
    x_bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"images must be finite; images \[1\]"):
        run(Seg(), x_bad, req)
    x_inf = x.clone()
    x_inf[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="images must be finite"):
        run(Seg(), x_inf, req)
    with pytest.raises(ValueError, match="model must output at least 2 classes"):
        run(Seg(k=1), x, req[:, :, :])
    with pytest.raises(TypeError, match="images have dtype torch.float64 .*model"):
        run(Seg(), x.double(), req)
    assert torch.isfinite(run(Seg(), x, req)).all()


def test_context_methods_reject_a_request_without_context():
    x, req = _batch()
    full = torch.ones_like(req)
    for name in ("context", "ctx-vg"):
        with pytest.raises(ValueError, match="requests of images .* cover the whole image"):
            _seg_methods()[name](Seg(), x, full)
    assert torch.isfinite(_seg_methods()["grid"](Seg(), x, full)).all()  # plain grid saliency is fine


def test_extract_aggregate_rejects_nan_input():
    from gsutils.saliency.extract_aggregate import saliency

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    x = torch.rand(1, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        saliency(model, x, 0, "0", "gradient")


# ------------------------------------------------------------------------------ 5. command lines


def _one_line_error(err: str, *words: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def _toy(tmp_path, *extra: str) -> list[str]:
    return ["toy-data", "--split", "test", "--n", "4", *extra]


def test_toy_cli_bad_out_is_one_line(tmp_path, capsys):
    from gsutils.__main__ import main

    assert main(_toy(tmp_path, "--out", str(tmp_path))) == 2
    _one_line_error(capsys.readouterr().err, "--out", "is a directory")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(_toy(tmp_path, "--out", str(blocker / "sub" / "x.npz"))) == 2
    _one_line_error(capsys.readouterr().err, "--out", "cannot be written")
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert main(_toy(tmp_path, "--out", str(ro / "x.npz"))) == 2
        _one_line_error(capsys.readouterr().err, "--out")
    with pytest.raises(SystemExit) as exc:  # argparse's own errors: one line too
        main(["toy-data", "--split", "test", "--n", "x", "--out", "a.npz"])
    assert exc.value.code == 2
    _one_line_error(capsys.readouterr().err, "--n")


def test_book_cli_bad_values_are_one_line(capsys):
    from gsutils import book

    for argv, word in ((["--device", "tpu"], "device"), (["--seed", "-1"], "seed"),
                       (["--profile", "huge"], "--profile"), (["--jobs", "0"], "--jobs")):
        with pytest.raises(SystemExit) as exc:
            book.main(argv + ["--no-build"])
        assert exc.value.code == 2, argv
        _one_line_error(capsys.readouterr().err, word)


def test_segmentation_cli_bad_values_are_one_line(capsys, tmp_path):
    from gsutils.experiments.grid import segmentation as seg

    for argv, word in ((["--device", "tpu"], "device"), (["--profile", "huge"], "--profile"),
                       (["--workers", "0"], "--workers"),
                       (["--data-root", str(tmp_path / "nope")], "--data-root")):
        with pytest.raises(SystemExit) as exc:
            seg.main(argv + ["--results-dir", str(tmp_path)])
        assert exc.value.code == 2, argv
        _one_line_error(capsys.readouterr().err, word)


def test_classification_cli_bad_values_are_one_line(capsys):
    from gsutils.experiments.normgrad import classifier_training as clf

    for argv, word in ((["--device", "tpu"], "device"), (["--seed", "-2"], "seed"),
                       (["--profile", "huge"], "--profile")):
        with pytest.raises(SystemExit) as exc:
            clf.main(argv)
        assert exc.value.code == 2, argv
        _one_line_error(capsys.readouterr().err, word)


def test_cuda_device_without_gpu_is_one_line_from_a_subprocess(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    r = subprocess.run([sys.executable, "-m", "gsutils.experiments.grid.segmentation", "--device", "cuda",
                        "--results-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    _one_line_error(r.stderr, "no CUDA device")


def test_gpu_profile_on_cpu_says_it_falls_back(monkeypatch, capsys, results_env):
    from gsutils import book, claims

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(book, "chapters", lambda *a: [])
    monkeypatch.setattr(claims, "collect", lambda d: d)
    assert book.main(["--profile", "gpu", "--no-build"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(err) == 1 and "falling back to the CPU" in err[0] and "'gpu'" in err[0]
    assert book.main(["--profile", "gpu", "--device", "cpu", "--no-build"]) == 0
    assert "falling back" not in capsys.readouterr().err  # asked for the CPU: no warning
    assert book.main(["--profile", "quick", "--no-build"]) == 0
    assert "falling back" not in capsys.readouterr().err


# ------------------------------------------------------------------------------ 6. smaller ones


def test_toy_cli_rejects_empty_and_ignored_options(tmp_path, capsys):
    from gsutils.__main__ import main

    out = tmp_path / "x.npz"
    assert main(["toy-data", "--split", "test", "--n", "0", "--out", str(out)]) == 2
    _one_line_error(capsys.readouterr().err, "--n must be at least 1")
    assert main(_toy(tmp_path, "--digit", "3", "--out", str(out))) == 2
    _one_line_error(capsys.readouterr().err, "--digit 3 is ignored with --bias none")
    assert main(_toy(tmp_path, "--data-root", str(tmp_path), "--out", str(out))) == 2
    _one_line_error(capsys.readouterr().err, "--data-root is only read with")
    assert main(_toy(tmp_path, "--digits-source", "torchvision", "--data-root",
                     str(tmp_path / "nope"), "--out", str(out))) == 2
    _one_line_error(capsys.readouterr().err, "is not a folder")
    assert not out.exists()


def test_cbd_on_an_empty_batch_is_a_clear_error():
    from gsutils.metrics.context_bias import cbd

    with pytest.raises(ValueError, match="maps must hold at least one image"):
        cbd(np.zeros((0, 4, 4)), np.zeros((0, 4, 4), dtype=bool))


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_written_files_honour_the_umask(tmp_path, umask):
    from gsutils.experiments.common.store import Store, atomic_write_bytes, write_checked

    old = os.umask(umask)
    try:
        paths = [atomic_write_bytes(tmp_path / "a.bin", b"x"), write_checked(tmp_path / "b.bin", b"y")]
        paths.append(tmp_path / "b.bin.sha256")
        store = Store(tmp_path / "store")
        store.save("k", {"a": 1}, {"v": 1})
        paths.append(store.path("k", {"a": 1}, "json"))
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_pointing_empty_ground_truth_with_region_raises_like_the_plain_path():
    from gsutils.metrics.pointing import PointingGame, hit_region

    game = PointingGame(2, tolerance=2)
    gt = torch.zeros(8, 8, dtype=torch.bool)
    region = hit_region(torch.ones(8, 8, dtype=torch.bool), 2)
    with pytest.raises(ValueError, match="gt is empty"):
        game.add((1, 1), gt, 0)
    with pytest.raises(ValueError, match="gt is empty"):
        game.add((1, 1), gt, 0, region=region)
    assert game.n_pairs() == 0


def test_grid_commands_share_one_executor_check(capsys):
    # the S1.2 grid, the S1.5 comparison and the S1.6 sweeps take the same executor options
    from gsutils.experiments.grid import backbones, segmentation, sweeps

    bad = ((["--cluster", "slurm", "--address", "tcp://h:8786"], "either"),
           (["--workers", "0"], "--workers"), (["--jobs", "0", "--cluster", "pbs"], "--jobs"),
           (["--executor", "local", "--address", "tcp://h:8786"], "--address"))
    for command in (segmentation.main, backbones.main, sweeps.main):
        for argv, word in bad:
            with pytest.raises(SystemExit) as exc:
                command(argv)
            assert exc.value.code == 2, (command.__module__, argv)
            _one_line_error(capsys.readouterr().err, word)
