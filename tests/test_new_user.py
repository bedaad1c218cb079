"""Issue #24, "The first hour of a new user": paths, data readers, explain, metrics, command lines,
files on the command line, a small saliency run, the shipped networks, explain's cost."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import gsutils


def _one_line_error(err: str, *words: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


# ------------------------------------------------------------------------------ 1. relative paths


def test_relative_data_root_and_results_dir_are_resolved_against_the_cwd(tmp_path, monkeypatch):
    from gsutils.cli import resolve_profile

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    cfg = resolve_profile("quick", device="cpu", data_root="data", results_dir="res")
    assert cfg.data_root == tmp_path / "data"
    assert cfg.results_dir == tmp_path / "res"


def test_relative_path_environment_is_made_absolute(tmp_path, monkeypatch):
    from gsutils.cli import resolve_profile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GSUTILS_RESULTS", "rel/results")
    monkeypatch.setenv("GSUTILS_CACHE", "rel/cache")
    cfg = resolve_profile("quick", device="cpu")
    # a kernel, worker or job started from here sees the same folders, whatever its cwd
    assert os.environ["GSUTILS_RESULTS"] == str(tmp_path / "rel" / "results")
    assert os.environ["GSUTILS_CACHE"] == str(tmp_path / "rel" / "cache")
    assert cfg.results_dir == tmp_path / "rel" / "results" / "quick"


def _fake_book_run(monkeypatch):
    """Record what ``gsutils.book`` hands to each kernel instead of executing it."""
    from gsutils import book, claims

    seen: list[dict] = []

    def execute(chapter, params, stamp_dir, lib, force=False):
        seen.append({"chapter": chapter, "params": dict(params), "stamp_dir": stamp_dir,
                     "env": dict(os.environ)})
        return "ran"

    monkeypatch.setattr(book, "execute", execute)
    monkeypatch.setattr(claims, "collect", lambda d: d)
    return seen


def test_book_hands_absolute_paths_to_its_kernels(tmp_path, monkeypatch):
    from gsutils import book

    seen = _fake_book_run(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("GSUTILS_RESULTS", "res")
    monkeypatch.setenv("GSUTILS_CACHE", "cache")
    first = book.chapters()[0]
    assert book.main(["--device", "cpu", "--data-root", "data", "--no-build", "--no-report",
                      "--only", first]) == 0
    assert [s["chapter"] for s in seen] == [first]
    assert seen[0]["params"]["data_root"] == str(tmp_path / "data")
    assert seen[0]["env"]["GSUTILS_RESULTS"] == str(tmp_path / "res")
    assert seen[0]["env"]["GSUTILS_CACHE"] == str(tmp_path / "cache")
    assert seen[0]["stamp_dir"] == tmp_path / "res" / "quick" / "executed"


def test_parallel_book_parts_get_absolute_paths(tmp_path, monkeypatch):
    from gsutils import book

    _fake_book_run(monkeypatch)
    started: list[tuple[list[str], dict]] = []

    class FakeProcess:
        def __init__(self, cmd, env=None, **kwargs):
            started.append((list(cmd), dict(env or {})))
            self.stdout = iter(())

        def wait(self):
            return 0

    monkeypatch.setattr(book.subprocess, "Popen", FakeProcess)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("GSUTILS_RESULTS", "res")
    firsts = {}
    for c in book.chapters():
        firsts.setdefault(c.split("/")[0], c)
    assert len(firsts) >= 2
    assert book.main(["--device", "cpu", "--data-root", "data", "--no-build", "--no-report",
                      "--jobs", "2", "--only", *list(firsts.values())[:2]]) == 0
    assert len(started) == 2
    for cmd, env in started:  # the part processes run in the repository, not in the caller's cwd
        assert cmd[cmd.index("--data-root") + 1] == str(tmp_path / "data")
        assert env["GSUTILS_RESULTS"] == str(tmp_path / "res")


def test_cluster_jobs_get_absolute_path_environment(tmp_path, monkeypatch):
    import shutil

    import dask_jobqueue

    from gsutils.experiments.common.executor import make_cluster

    made = {}

    class FakeCluster:
        def __init__(self, **kwargs):
            made.update(kwargs)

        def scale(self, jobs):
            made["jobs"] = jobs

    monkeypatch.setattr(dask_jobqueue, "SLURMCluster", FakeCluster)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GSUTILS_CACHE", "rel cache")
    monkeypatch.delenv("GSUTILS_RESULTS", raising=False)
    make_cluster("slurm", 2, job_script_prologue=["module load cuda"])
    prologue = made["job_script_prologue"]
    assert "module load cuda" in prologue
    assert f"export GSUTILS_CACHE='{tmp_path / 'rel cache'}'" in prologue
    assert not any("GSUTILS_RESULTS" in line for line in prologue)
    assert made["jobs"] == 2


# ------------------------------------------------------------------------------ 2./5. data readers


def _coco_fixture(root: Path, *, category_id: int = 9) -> tuple[Path, Path]:
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(root / "images" / "a.png")
    ann = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "categories": [{"id": 9, "name": "boat"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": category_id, "iscrowd": 0, "area": 200.0,
             "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]], "bbox": [0, 0, 20, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 25.0,
             "segmentation": [[25, 15, 30, 15, 30, 20, 25, 20]], "bbox": [25, 15, 5, 5]},
        ],
    }
    (root / "instances.json").write_text(json.dumps(ann))
    return root / "images", root / "instances.json"


def test_coco_semantic_missing_category_with_string_paths(tmp_path):
    from gsutils.data.coco_semantic import COCOSemantic

    images, ann = _coco_fixture(tmp_path)
    with pytest.raises(ValueError, match=r"instances.json has no category \['tv'\].*boat"):
        COCOSemantic(str(images), str(ann), ["tv"])


def test_coco_semantic_takes_one_string_as_one_category(tmp_path):
    from gsutils.data.coco_semantic import COCOSemantic

    images, ann = _coco_fixture(tmp_path)
    ds = COCOSemantic(images, ann, "person")
    assert ds.categories == ("person",)
    assert ds.class_names == ("background", "person")
    _, y = ds[0]
    assert y[17, 27] == 1 and y[2, 2] == 0


def test_coco_annotation_of_an_unknown_category_names_the_file_and_id(tmp_path):
    from gsutils.data.coco import COCODataset

    images, ann = _coco_fixture(tmp_path, category_id=99)
    with pytest.raises(ValueError, match=r"instances\.json.*category_id 99"):
        COCODataset(images, ann)[0]


def test_a_coco_file_that_is_not_json_is_named(tmp_path):
    from gsutils.data.coco import COCODataset
    from gsutils.data.coco_semantic import COCOSemantic

    images, ann = _coco_fixture(tmp_path)
    ann.write_text(ann.read_text()[:50])  # truncated
    for make in (lambda: COCODataset(images, ann), lambda: COCOSemantic(images, ann, ["boat"])):
        with pytest.raises(ValueError, match=r"instances\.json.* is not valid JSON") as err:
            make()
        assert "\n" not in str(err.value)


def test_a_truncated_voc_annotation_is_named(tmp_path):
    from gsutils.data.voc import parse_voc_annotation

    path = tmp_path / "000001.xml"
    path.write_text("<annotation><filename>000001.jpg</filename><object><name>dog")
    with pytest.raises(ValueError, match=r"000001\.xml.* is not valid XML") as err:
        parse_voc_annotation(path)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------ 3./6. explain


class _ConstantModel(nn.Module):
    """Ignores its input: no context is ever needed."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        n, _, h, w = x.shape
        out = torch.zeros(n, 3, h, w, dtype=x.dtype)
        out[:, 1] = self.w
        return out + 0.0 * x.sum()


class _PatchContext(nn.Module):
    """Class 1's logit everywhere = 20 * (mean of the top-left 4x4 patch - 0.5)."""

    def forward(self, x):
        patch = x[:, :, :4, :4].mean(dim=(1, 2, 3))  # (N,)
        one = (20.0 * (patch - 0.5))[:, None, None, None].expand(-1, 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(one), one], 1)


def _scene(n: int = 1, s: int = 16):
    x = torch.full((n, 3, s, s), 0.5)
    x[:, :, :4, :4] = 1.0
    r = torch.zeros(n, s, s, dtype=torch.bool)
    r[:, 10:14, 10:14] = True
    return x, r


def _empty_agrees_with_map(res) -> None:
    zero = res.maps.flatten(1).amax(1) == 0
    assert torch.equal(res.empty, zero), (res.empty, zero)
    assert torch.all(res.grid_masks[res.empty] == 0)
    assert torch.equal(res.loss[res.empty], res.empty_loss[res.empty])


@pytest.mark.parametrize("method", ["context", "grid"])
def test_explain_flags_an_all_zero_map_as_empty(method):
    x, r = _scene()
    # the penalty alone drives every cell below the clipping threshold: the map is all zero
    res = gsutils.explain(_ConstantModel().eval(), x[0], r[0], 1, method=method)
    assert torch.all(res.maps == 0)
    assert bool(res.empty[0])
    _empty_agrees_with_map(res)


def test_explain_empty_is_false_for_a_map_with_context():
    from gsutils.saliency.grid import GridSaliencyConfig

    x, r = _scene(2)
    res = gsutils.explain(_PatchContext().eval(), x, r, 1, config=GridSaliencyConfig(greys=(0.0,), steps=60))
    assert not res.empty.any()
    _empty_agrees_with_map(res)


def test_the_result_records_its_upsampling_and_the_views_redraw_with_it():
    from gsutils.saliency.grid import GridSaliencyConfig, context_saliency, saliency_views

    assert "bilinear" in GridSaliencyConfig.__doc__
    x, r = _scene(2)
    cfg = GridSaliencyConfig(greys=(0.0,), steps=60)
    assert context_saliency(_PatchContext(), x, r, 1, config=cfg).upsample == "nearest"
    res = gsutils.explain(_PatchContext().eval(), x, r, 1, config=cfg)
    assert res.upsample == "bilinear"
    v = saliency_views(_PatchContext(), x, r, res)
    up = F.interpolate(res.grid_masks[:, None], size=x.shape[2:], mode="bilinear", align_corners=False)
    torch.testing.assert_close(v["optimised"], v["perturbed"] + up * (x - v["perturbed"]))
    # the redrawn mask is the map outside the request region
    torch.testing.assert_close(up[:, 0] * ~r, res.maps)


def test_randomisation_does_not_reseed_the_accelerators(monkeypatch):
    from gsutils.saliency.randomize import cascading_randomization, layer_blocks

    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 6, 6))
    calls.clear()
    state = torch.get_rng_state()
    stages = [(name, [p.detach().clone() for p in m.parameters()])
              for name, m in cascading_randomization(model, layer_blocks(model), seed=3)]
    assert calls == []  # the CPU model's stages touch no CUDA generator
    assert torch.equal(torch.get_rng_state(), state)  # and leave the CPU's as it was
    # each module is still initialised under its own seed, as before
    again = [(name, [p.detach().clone() for p in m.parameters()])
             for name, m in cascading_randomization(model, layer_blocks(model), seed=3)]
    for (a, pa), (b, pb) in zip(stages, again):
        assert a == b and all(torch.equal(u, v) for u, v in zip(pa, pb))


# ------------------------------------------------------------------------------ 4. metrics


def test_cbl_of_a_request_covering_the_whole_image_is_an_error():
    from gsutils.metrics.context_bias import cbd, cbl

    maps = np.zeros((2, 4, 4))
    req = np.zeros((2, 4, 4), dtype=bool)
    req[1] = True
    biased = np.zeros((2, 4, 4), dtype=bool)
    for call in (lambda: cbd(maps, req), lambda: cbl(maps, req, biased)):
        with pytest.raises(ValueError, match=r"requests cover the whole image in images \[1\]"):
            call()


# ------------------------------------------------------------------------------ 7./8. command lines


def test_toy_data_refuses_more_than_fits_in_memory(tmp_path, monkeypatch, capsys):
    import gsutils.__main__ as cli_main

    out = tmp_path / "x.npz"
    monkeypatch.setattr(cli_main, "_available_memory", lambda: 10**6, raising=False)
    assert cli_main.main(["toy-data", "--split", "test", "--n", "1000", "--out", str(out)]) == 2
    _one_line_error(capsys.readouterr().err, "--n 1000", "memory", "available")
    assert not out.exists()


def test_toy_data_of_a_hundred_million_samples_is_refused_at_once(tmp_path, capsys):
    import time

    from gsutils.__main__ import main

    t0 = time.perf_counter()
    assert main(["toy-data", "--split", "test", "--n", "100000000", "--out", str(tmp_path / "x.npz")]) == 2
    assert time.perf_counter() - t0 < 5
    _one_line_error(capsys.readouterr().err, "--n 100000000", "memory")


def test_toy_data_without_bias_explains_its_bias_texture_count(tmp_path, capsys):
    from gsutils.__main__ import main

    assert main(["toy-data", "--split", "test", "--n", "40", "--out", str(tmp_path / "x.npz")]) == 0
    line = capsys.readouterr().out.strip()
    assert "with the bias texture" in line and "unbiased" in line and "pool" in line, line


def test_each_command_shows_its_own_usage(capsys):
    from gsutils.__main__ import DELEGATED, main

    for command in DELEGATED:
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m gsutils {command} "), (command, out[:200])


def test_profile_arguments_have_help_with_their_defaults():
    from gsutils.cli import Parser, add_profile_arguments

    p = Parser(prog="x")
    add_profile_arguments(p)
    helps = {a.dest: a.help or "" for a in p._actions}
    for dest, default in (("profile", "quick"), ("device", "auto"), ("seed", "0"), ("data_root", "none")):
        assert f"default: {default}" in helps[dest], (dest, helps[dest])


# ------------------------------------------------------------------------------ A. files on the command line


def _status(argv: list[str]) -> int:
    """``python -m gsutils ARGV``'s exit status, whether ``main`` returns it or exits with it."""
    from gsutils.__main__ import main

    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _error_line(err: str, command: str, *words: str) -> str:
    """The one error line of ``err`` (which may also hold progress bars), starting a line of its own."""
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"python -m gsutils {command}: error: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _fake_shipped(src: Path) -> None:
    from gsutils.experiments.common.shipped import FILES

    src.mkdir()
    for f in FILES:
        (src / f).write_bytes(f.encode() * 1000)


@pytest.mark.parametrize("failing", ["model.pt", "config.json"])
def test_a_full_disk_while_restoring_a_shipped_network_leaves_no_temp_file(tmp_path, monkeypatch, failing):
    import errno
    import shutil

    from gsutils.experiments.common import shipped

    src, out = tmp_path / "shipped", tmp_path / "models" / "key"
    _fake_shipped(src)
    real = shutil.copyfile

    def copyfile(a, b):
        if Path(a).name == failing:  # half the bytes reach the disk, then it is full
            Path(b).write_bytes(Path(a).read_bytes()[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(b))
        return real(a, b)

    monkeypatch.setattr(shipped.shutil, "copyfile", copyfile)
    with pytest.raises(OSError) as err:
        shipped.copy_shipped(src, out)
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in out.iterdir()) == []  # no *.restoring, no half-restored network
    monkeypatch.setattr(shipped.shutil, "copyfile", real)
    shipped.copy_shipped(src, out)  # with room, the restore completes
    assert sorted(p.name for p in out.iterdir()) == sorted(shipped.FILES)


def test_a_read_only_results_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import importlib

    from gsutils.__main__ import DELEGATED

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("the folder stays writable (running as root)")
        monkeypatch.setenv("GSUTILS_RESULTS", str(ro))
        module, _ = DELEGATED["saliency"]
        monkeypatch.setattr(importlib.import_module(module), "main", lambda argv: pytest.fail("work started"))
        assert _status(["saliency", "--device", "cpu"]) == 2
        _error_line(capsys.readouterr().err, "saliency", str(ro / "quick"), "read-only", "GSUTILS_RESULTS")
    finally:
        ro.chmod(0o755)


def test_a_results_folder_below_a_file_is_refused_for_every_command(tmp_path, monkeypatch, capsys):
    import importlib

    from gsutils.__main__ import DELEGATED

    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    monkeypatch.setenv("GSUTILS_RESULTS", str(blocker))
    for command, (module, _) in DELEGATED.items():
        monkeypatch.setattr(importlib.import_module(module), "main", lambda argv: pytest.fail("work started"))
        assert _status([command, "--device", "cpu"]) == 2, command
        _error_line(capsys.readouterr().err, command, str(blocker), "is a file, not a folder", "GSUTILS_RESULTS")


@pytest.fixture
def small_saliency(tmp_path, monkeypatch, results_env):
    """``python -m gsutils saliency`` on a shrunken quick profile (few test images and steps) whose
    networks are small fixed-seed convolutional models (their labels are recorded in ``loads``)."""
    from gsutils import cli
    from gsutils.experiments.grid import context_saliency as cs

    real = cli.resolve_profile

    def shrunk(name, **kwargs):
        prof = real(name, **kwargs)
        sal = dataclasses.replace(prof.saliency, images_per_digit=4, workers=1, grid_steps=2, ig_steps=2, sg_samples=2,
                                  batch_size=16, gallery_images=1)
        return dataclasses.replace(prof, toy=dataclasses.replace(prof.toy, n_test=120), saliency=sal)

    loads: list[str] = []

    def fake_load(profile, run, progress=False):
        loads.append(run.label)
        torch.manual_seed(run.bias.texture)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 11, 3, padding=1)).eval()

    monkeypatch.setattr(cli, "resolve_profile", shrunk)
    monkeypatch.setattr(cs, "train_or_load", fake_load)
    prof = shrunk("quick", device="cpu")
    return prof, cs.biased_runs(prof), loads


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS"])
def test_a_failed_write_during_a_command_is_one_line(small_saliency, monkeypatch, capsys, code):
    import errno

    import gsutils.io

    prof, _, _ = small_saliency

    def full(path, data):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(path))

    monkeypatch.setattr(gsutils.io, "atomic_write_bytes", full)
    assert _status(["saliency", "--device", "cpu"]) == 2
    fix = "free some disk space" if code == "ENOSPC" else "on a writable disk"
    _error_line(capsys.readouterr().err, "saliency", str(prof.results_dir), os.strerror(getattr(errno, code)),
                fix, "GSUTILS_RESULTS")


def test_unreadable_and_corrupt_input_files_are_one_line(tmp_path, monkeypatch, capsys):
    import gzip
    import importlib
    import zipfile

    from gsutils.__main__ import DELEGATED

    good = tmp_path / "data.npz"
    np.savez(good, a=np.arange(1000))
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:200])
    (tmp_path / "truncated.gz").write_bytes(gzip.compress(b"x" * 10_000)[:40])
    (tmp_path / "bad.json").write_text('{"a": ')
    (tmp_path / "folder.json").mkdir()
    readers = {  # what the data readers meet in a damaged data root
        "truncated.npz": lambda p: np.load(p)["a"],
        "truncated.gz": lambda p: gzip.decompress(p.read_bytes()),
        "bad.json": lambda p: json.loads(p.read_text()),
        "folder.json": lambda p: p.read_text(),
        "missing.png": lambda p: Image.open(p),
    }
    module, _ = DELEGATED["train"]
    for name, read in readers.items():
        monkeypatch.setattr(importlib.import_module(module), "main",
                            lambda argv, read=read, name=name: read(tmp_path / name))
        assert _status(["train", "--device", "cpu"]) == 2, name
        _error_line(capsys.readouterr().err, "train")
    with pytest.raises(zipfile.BadZipFile):  # the npz case above is a zip error, not an OSError
        np.load(tmp_path / "truncated.npz")["a"]


# ------------------------------------------------------------------------------ B. a small saliency run


def test_the_saliency_command_can_be_made_small(small_saliency, capsys):
    prof, runs, loads = small_saliency
    chosen = [runs[1].label, "0"]
    assert _status(["saliency", "--device", "cpu", "--networks", *chosen, "--images", "2"]) == 0
    assert loads == [runs[1].label, runs[0].label] * 2  # the two networks, for both saliency runs
    out, err = capsys.readouterr()
    assert "networks" in err and "2/2" in err  # the progress bar
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"saliency of 2 networks: wrote 4 result files under {prof.results_dir}: "), last
    names = last.split(": ", 2)[2].split(", ")
    assert len(names) == 4 and all((prof.results_dir / n).is_file() for n in names)
    assert all(n.startswith("context_saliency") and n.endswith(".npz") for n in names)
    # a second run loads them, and says so
    assert _status(["saliency", "--device", "cpu", "--networks", *chosen, "--images", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "wrote 0 result files" in last and "4 already there (loaded)" in last, last


def test_an_unknown_saliency_network_lists_the_valid_ones(small_saliency, capsys):
    _, runs, loads = small_saliency
    for bad, why in (("small/strong-d7-t0/s0", "is not a biased network"), ("small/N/s0", "unbiased"),
                     (str(len(runs)), "is not a biased network")):
        assert _status(["saliency", "--device", "cpu", "--networks", bad]) == 2
        line = _error_line(capsys.readouterr().err, "saliency", repr(bad), why)
        assert all(f"{i} {r.label}" in line for i, r in enumerate(runs)), line
    assert _status(["saliency", "--device", "cpu", "--images", "0"]) == 2
    _error_line(capsys.readouterr().err, "saliency", "--images")
    assert loads == []


# ------------------------------------------------------------------------------ C. shipped networks


@pytest.fixture
def fake_grid_loads(monkeypatch):
    """``train_or_load`` and the test sets replaced by recorders (nothing is loaded or rendered)."""
    from gsutils.experiments.grid import context_saliency as cs
    from gsutils.experiments.grid import segmentation as seg

    seen: list[tuple] = []

    def fake_load(profile, run, **kwargs):
        seen.append(("network", profile, run))
        return nn.Sequential(nn.Conv2d(1, 11, 1), nn.Dropout()).train()

    monkeypatch.setattr(seg, "train_or_load", fake_load)
    monkeypatch.setattr(cs, "biased_test_set", lambda profile, run: seen.append(("biased", profile, run)) or "B")
    monkeypatch.setattr(seg, "unbiased_test_set", lambda profile: seen.append(("unbiased", profile)) or "U")
    return seen


def test_load_network_and_test_set_pick_the_grid_network(fake_grid_loads):
    from gsutils.profiles import get_profile

    seen = fake_grid_loads
    g = get_profile("quick", device="cpu").grid
    digit, texture, seed = g.bias_digits[-1], g.bias_textures[-1], g.seeds[-1]
    net = gsutils.load_network("quick", bias="weak", digit=digit, texture=texture, seed=seed)
    assert not net.training  # eval mode
    what, prof, run = seen.pop()
    assert (prof.name, prof.device) == ("quick", "cpu")
    assert (run.bias.strength, run.bias.digit, run.bias.texture, run.seed) == ("weak", digit, texture, seed)
    assert run.backbone == prof.train.backbone
    assert gsutils.load_network(bias="none") is not None
    assert seen.pop()[2].bias.strength == "none"
    assert gsutils.load_test_set("quick", bias="strong", digit=digit, texture=g.bias_textures[0]) == "B"
    what, _, run = seen.pop()
    assert what == "biased" and (run.bias.strength, run.bias.texture) == ("strong", g.bias_textures[0])
    assert gsutils.load_test_set(bias="none") == "U" and seen.pop()[0] == "unbiased"


def test_load_network_lists_the_grid_for_a_combination_it_lacks(fake_grid_loads):
    from gsutils.profiles import get_profile

    g = get_profile("quick", device="cpu").grid
    lacking = next(d for d in range(10) if d not in g.bias_digits)
    grid = [f"digit in {tuple(g.bias_digits)}", f"texture in {tuple(g.bias_textures)}", f"seed in {tuple(g.seeds)}"]
    for kwargs, words in (
        ({"digit": lacking, "bias": g.strengths[0]}, [f"digit={lacking}", *grid]),
        ({"seed": max(g.seeds) + 1}, [f"seed={max(g.seeds) + 1}", *grid]),
        ({"bias": "medium"}, ["'medium'", "'strong', 'weak', 'none'"]),
        ({"device": "tpu"}, ["tpu"]),
        ({"profile": "fast"}, ["'fast'", "quick"]),
    ):
        for load in (gsutils.load_network, gsutils.load_test_set):
            with pytest.raises(ValueError) as err:
                load(**kwargs)
            assert "\n" not in str(err.value)
            for w in words:
                assert w in str(err.value), (w, str(err.value))
    with pytest.raises(TypeError, match="digit must be an int"):
        gsutils.load_network(digit="2")
    assert fake_grid_loads == []


def test_the_public_functions_keep_the_package_import_light():
    import subprocess
    import sys

    code = ("import sys, gsutils; f = (gsutils.load_network, gsutils.load_test_set, 'load_network' in "
            "dir(gsutils)); print(f[2], 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False"]


# ------------------------------------------------------------------------------ D. explain's cost


def test_explain_shows_its_progress_and_documents_its_cost(capsys):
    import inspect

    from gsutils.saliency.grid import GridSaliencyConfig

    param = inspect.signature(gsutils.explain).parameters.get("progress")
    assert param is not None and param.default is False
    doc = gsutils.explain.__doc__
    assert "deeplabv3_mobilenet_v3_large" in doc and "s of wall time" in doc and "one torch thread" in doc
    x, r = _scene(2)
    cfg = GridSaliencyConfig(greys=(0.0,), steps=5)
    gsutils.explain(_PatchContext().eval(), x, r, 1, config=cfg)
    assert capsys.readouterr().err == ""
    gsutils.explain(_PatchContext().eval(), x, r, 1, config=cfg, progress=True)
    err = capsys.readouterr().err
    assert "grid saliency" in err and "/10 " in err, err  # images x steps


def test_the_scene_chapters_run_as_their_own_chain_after_the_parts():
    from gsutils import book

    chs = ["grid_saliency/01_toy_dataset", "grid_saliency/02_setup_and_bias", "grid_saliency/07_cityscapes",
           "grid_saliency/08_coco", "normgrad/01_pointing_game"]
    assert book._parts(chs) == [["grid_saliency/01_toy_dataset", "grid_saliency/02_setup_and_bias"],
                                ["normgrad/01_pointing_game"],
                                ["grid_saliency/07_cityscapes", "grid_saliency/08_coco"]]


def test_the_backbone_and_sweep_chapters_run_beside_the_bias_chapters():
    from gsutils import book

    grid = [f"grid_saliency/{c}" for c in ("01_toy_dataset", "02_setup_and_bias", "03_bias_detection",
                                            "04_bias_localization", "05_backbones", "06_parameters",
                                            "07_cityscapes", "08_coco")]
    parts = book._parts(grid + ["normgrad/01_pointing_game"])
    # S1.4 reads S1.3's maps: one chain; S1.5 and S1.6 explain their own networks: chains of their own,
    # the longest (the sweeps) first
    assert parts == [grid[:4], ["normgrad/01_pointing_game"], [grid[5]], [grid[4]], grid[6:]]
