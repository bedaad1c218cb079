"""Provenance of every shipped network, portable across x86-64 CPUs.

Each shipped network's logged first training steps are re-run from its
config, data and initialisation (:mod:`gsutils.experiments.common.provenance`; the traces of
:mod:`gsutils.experiments.grid.shipped_traces` and :mod:`gsutils.experiments.normgrad.shipped_traces`): bit
for bit on the machine kind that trained it, within tolerances measured
across CPU code paths elsewhere. The mutation tests show that the same check
fails when the config, the seed or the data differ.

The portability run (``make unit-portable``, the ``numeric`` marker) re-runs one
U-Net per architecture and recipe: the others of a group compute the same
operations on other images (whose bytes that run checks in ``test_toy_data``),
and every network is re-run here on the machine's own code path. The mutation
tests compare changes far outside the tolerances, on any code path.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gsutils.experiments.common import provenance as pv
from gsutils.experiments.grid import shipped_traces as grid_traces
from gsutils.experiments.normgrad import shipped_traces as normgrad_traces
from gsutils.profiles import get_profile

QUICK = get_profile("quick", device="cpu")
#: float64 steps of the 64 px U-Nets re-run per network (the log keeps 8; each costs seconds)
UNET_STEPS = 3


def _traces(which: str):
    return grid_traces.shipped_traces(QUICK, which) + normgrad_traces.shipped_traces(QUICK, which)


def _ids(traces):
    return [t.name for t in traces]


def _recipe(trace) -> str:
    """What a network's first steps compute, apart from its images and seed: its kind, architecture
    and recipe (its config without the data and seed)."""
    import json

    cfg = json.loads((trace.folder / "config.json").read_text()) if (trace.folder / "config.json").is_file() else {}
    return json.dumps([trace.kind, cfg.get("architecture"), cfg.get("backbone"), cfg.get("recipe")], sort_keys=True)


def _one_per_recipe(traces):
    """``traces`` as parameters, the first of each :func:`_recipe` marked ``numeric`` (re-run again
    on the generic CPU code path); a trace without a config is marked too (it fails anyway)."""
    seen, params = set(), []
    for t in traces:
        r = _recipe(t)
        first = r not in seen or not (t.folder / "config.json").is_file()
        seen.add(r)
        params.append(pytest.param(t, id=t.name, marks=[pytest.mark.numeric] if first else []))
    return params


def _check(trace, steps: int | None = None) -> None:
    if not trace.logged:
        pytest.fail(f"{trace.name}: not shipped or its log has no first steps ({trace.folder})")
    logged = trace.logged if steps is None else trace.logged[:steps]
    rerun = trace.rerun(steps)
    pv.check(logged, rerun, trace.kind, trained_on=trace.trained_on, what=trace.name, exact=trace.exact)


@pytest.mark.parametrize("trace", _one_per_recipe(_traces("unet")))
def test_quick_unets_first_steps(trace):
    _check(trace, UNET_STEPS)


@pytest.mark.parametrize("trace", _one_per_recipe(_traces("slim")))
def test_slim_unets_first_steps(trace):
    _check(trace, UNET_STEPS if trace.kind == "smp-float64" else None)


@pytest.mark.numeric
@pytest.mark.parametrize("trace", _traces("classifier"), ids=_ids(_traces("classifier")))
def test_classifiers_first_steps(trace):
    _check(trace)


@pytest.mark.numeric
@pytest.mark.parametrize("trace", _traces("deeplab"), ids=_ids(_traces("deeplab")))
def test_deeplabs_first_steps(trace):
    _check(trace)


@pytest.mark.numeric
def test_captioner_first_steps():
    (trace,) = _traces("captioner")
    _check(trace)


# ------------------------------------------------------------------------------------------ the check


@pytest.mark.numeric
def test_check_is_exact_on_the_training_machine_kind_and_tolerant_elsewhere(monkeypatch):
    from gsutils.experiments.common.shipped import machine

    logged = [2.0, 1.5, 1.25]
    close = [2.0 * (1 + 1e-9), 1.5 * (1 + 1e-6), 1.25]
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    with pytest.raises(AssertionError, match="same machine kind"):
        pv.check(logged, close, "unet-float32", trained_on=machine())
    pv.check(logged, close, "unet-float32", trained_on={**machine(), "cpu": "another CPU"})
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")  # the portability run: never exact
    pv.check(logged, close, "unet-float32", trained_on=machine())
    with pytest.raises(AssertionError, match="step 0"):
        pv.check(logged, [2.001, 1.5, 1.25], "unet-float32")
    with pytest.raises(AssertionError, match="step 2"):
        pv.check(logged, [2.0, 1.5, 1.3], "unet-float32")
    with pytest.raises(AssertionError, match="step 1"):
        pv.check(logged, [2.0, float("nan"), 1.25], "unet-float32")
    with pytest.raises(AssertionError, match="2 steps"):
        pv.check(logged, [2.0, 1.5], "unet-float32")
    with pytest.raises(ValueError, match="kind must be"):
        pv.check(logged, logged, "resnet")


# ------------------------------------------------------------------------- mutation tests, per kind


def _fails(trace, rerun) -> bool:
    try:
        pv.check(trace.logged[:len(rerun)], rerun, trace.kind, what=trace.name)
    except AssertionError:
        return True
    return False


def _one_thread(fn):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return pv.as_floats(fn())
    finally:
        torch.set_num_threads(n)


@pytest.mark.parametrize("which", ["unet", "slim"])
def test_unet_check_fails_for_another_lr_seed_or_data(which):
    from gsutils.data.toy import BiasConfig
    from gsutils.experiments.grid import segmentation as seg
    from gsutils.experiments.grid.backbones import backbone_runs, run_profile

    trace = next(t for t in _traces(which) if "strong-" in t.name or "weak-" in t.name)  # a biased network
    if not trace.logged:
        pytest.fail(f"{trace.name} is not shipped")
    runs = seg.grid_runs(QUICK) if which == "unet" else backbone_runs(QUICK)
    run = next(r for r in runs if r.label == trace.name)
    prof = QUICK if which == "unet" else run_profile(QUICK, run)
    f64 = trace.kind in ("unet-float64", "smp-float64")  # the 64 px networks log a float64 trace
    # a changed lr shows from the second step on (the one-cycle warm-up keeps it small), a changed
    # seed or data at the first (the unchanged run's replay is test_quick_unets_first_steps and
    # test_slim_unets_first_steps)
    n = UNET_STEPS if f64 else len(trace.logged)
    n_first = 1 if f64 else n
    dtype = torch.float64 if f64 else None
    other_lr = dataclasses.replace(prof, train=dataclasses.replace(prof.train, lr=prof.train.lr * 2))
    assert _fails(trace, _one_thread(lambda: seg.first_step_losses(other_lr, run, n, dtype)))
    other_seed = dataclasses.replace(run, seed=run.seed + 1)
    assert _fails(trace, _one_thread(lambda: seg.first_step_losses(prof, other_seed, n_first, dtype)))
    other_texture = dataclasses.replace(run, bias=BiasConfig(strength=run.bias.strength, digit=run.bias.digit,
                                                              texture=(run.bias.texture + 1) % 5, probability=1.0))
    assert _fails(trace, _one_thread(lambda: seg.first_step_losses(prof, other_texture, n_first, dtype)))


def test_classifier_check_fails_for_another_lr_or_seed():
    from gsutils.experiments.normgrad import classifier_training as ct

    trace = next(t for t in _traces("classifier") if t.name == "resnet50")
    ng = QUICK.normgrad
    other_lr = dataclasses.replace(QUICK, normgrad=dataclasses.replace(ng, lr=ng.lr * 2))
    assert _fails(trace, _one_thread(lambda: ct.first_step_losses(other_lr, "resnet50", 3)))
    other_seed = dataclasses.replace(QUICK, seed=QUICK.seed + 1)
    assert _fails(trace, _one_thread(lambda: ct.first_step_losses(other_seed, "resnet50", 3)))


def test_deeplab_check_fails_for_another_lr_seed_or_data():
    """The DeepLabs log only 4 steps, at the start of a one-cycle warm-up (lr / 25), so a doubled
    lr moves them by 4e-3 at most, inside the tolerance; a tenfold lr, another seed or other
    images are caught."""
    import json

    from gsutils.experiments.grid import coco_context, street_context
    from gsutils.experiments.grid.deeplab_training import DeepLabRecipe, first_step_losses

    trace = _traces("deeplab")[0]
    cfg = json.loads((trace.folder / "config.json").read_text())
    recipe = DeepLabRecipe(**cfg["recipe"])
    street = street_context.street_data(QUICK, progress=False)
    data = street if cfg["data"] == street.key else coco_context.coco_data(QUICK)
    x, y, n = data.train_x, data.train_y, len(trace.logged)
    assert not _fails(trace, _one_thread(lambda: first_step_losses(recipe, x, y, n=n)))
    for changed in (dataclasses.replace(recipe, lr=recipe.lr * 10), dataclasses.replace(recipe, seed=recipe.seed + 1)):
        assert _fails(trace, _one_thread(lambda: first_step_losses(changed, x, y, n=n)))
    assert _fails(trace, _one_thread(lambda: first_step_losses(recipe, x.flip(-2), y.flip(-2), n=n)))


def test_captioner_check_fails_for_another_lr():
    from gsutils.experiments.common.store import decode
    from gsutils.experiments.normgrad import captioning as cap
    from gsutils.io import read_checked

    (trace,) = _traces("captioner")
    vocab = cap.Vocabulary(decode(read_checked(trace.folder / "model.pt"), "pt")["vocab"])
    c = QUICK.captioning
    other_lr = dataclasses.replace(QUICK, captioning=dataclasses.replace(c, lr=c.lr * 2))
    assert _fails(trace, _one_thread(lambda: cap.first_step_losses(other_lr, vocab, len(trace.logged))))
