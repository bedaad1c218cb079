"""The one epoch loop (gsutils.experiments.common.training.fit): resume, checkpoints, corrupt files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gsutils.experiments.common.training import (
    TrainState,
    discard_checkpoint,
    fit,
    lr_at,
    make_optimizer,
    make_scheduler,
    mix_seed,
)

#: compares floats or bytes to what the same code made elsewhere: also run with a forced CPU kernel set
pytestmark = pytest.mark.numeric

X = torch.linspace(-1, 1, 64).reshape(16, 4)
Y = (X.sum(1, keepdim=True) > 0).float()


class Stop(RuntimeError):
    pass


def fresh() -> TrainState:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return TrainState(model, opt, torch.optim.lr_scheduler.StepLR(opt, 3, 0.5))


def run_epoch(epoch, state, step):
    order = torch.randperm(16, generator=torch.Generator().manual_seed(mix_seed(7, epoch)))
    torch.manual_seed(mix_seed(8, epoch))  # dropout
    total = 0.0
    for i in range(0, 16, 4):
        idx = order[i:i + 4]
        loss = nn.functional.binary_cross_entropy_with_logits(state.model(X[idx]), Y[idx])
        state.optimizer.zero_grad()
        loss.backward()
        state.optimizer.step()
        total += float(loss)
        step(float(loss))
    state.scheduler.step()
    return {"loss": total / 4, "lr": state.optimizer.param_groups[0]["lr"]}


def params(state):
    return [p.detach().clone() for p in state.model.parameters()]


def test_resumed_run_ends_bit_for_bit_where_an_uninterrupted_one_does(tmp_path):
    full, hist_full = fit(fresh=fresh, run_epoch=run_epoch, epochs=5, steps_per_epoch=4,
                          checkpoint=tmp_path / "a.pt", progress=False)
    seen = []

    def stop_at_2(epoch, record, state):
        seen.append(epoch)
        if epoch == 2:
            raise Stop()

    with pytest.raises(Stop):
        fit(fresh=fresh, run_epoch=run_epoch, epochs=5, steps_per_epoch=4, checkpoint=tmp_path / "b.pt",
            progress=False, on_epoch_end=stop_at_2)
    assert (tmp_path / "b.pt").exists() and (tmp_path / "b.pt.sha256").exists()
    resumed, hist = fit(fresh=fresh, run_epoch=run_epoch, epochs=5, steps_per_epoch=4,
                        checkpoint=tmp_path / "b.pt", progress=False,
                        on_epoch_end=lambda e, r, s: seen.append(e))
    assert seen == [1, 2, 3, 4, 5]  # epochs 1-2 before the stop, 3-5 after: none redone
    assert all(torch.equal(a, b) for a, b in zip(params(full), params(resumed)))
    assert [h["loss"] for h in hist] == [h["loss"] for h in hist_full]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5] and all(h["seconds"] >= 0 for h in hist)
    assert [h["lr"] for h in hist] == [0.1, 0.1, 0.05, 0.05, 0.05]  # the scheduler state was resumed too
    # a finished run is not trained again
    again, _ = fit(fresh=fresh, run_epoch=lambda *a: pytest.fail("retrained"), epochs=5, steps_per_epoch=4,
                   checkpoint=tmp_path / "b.pt", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(params(full), params(again)))
    discard_checkpoint(tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists() and not (tmp_path / "b.pt.sha256").exists()


def test_corrupt_checkpoint_is_moved_aside_and_training_starts_over(tmp_path):
    ckpt = tmp_path / "c.pt"
    with pytest.raises(Stop):
        fit(fresh=fresh, run_epoch=run_epoch, epochs=3, steps_per_epoch=4, checkpoint=ckpt, progress=False,
            on_epoch_end=lambda e, r, s: (_ for _ in ()).throw(Stop()))
    ckpt.write_bytes(ckpt.read_bytes()[:50])
    with pytest.warns(UserWarning, match="moved aside"):
        state, hist = fit(fresh=fresh, run_epoch=run_epoch, epochs=3, steps_per_epoch=4, checkpoint=ckpt,
                          progress=False)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert list(tmp_path.glob("c.pt.corrupt-*"))  # kept, not deleted
    ref, _ = fit(fresh=fresh, run_epoch=run_epoch, epochs=3, steps_per_epoch=4, checkpoint=tmp_path / "r.pt",
                 progress=False)
    assert all(torch.equal(a, b) for a, b in zip(params(ref), params(state)))


def test_bad_arguments_and_recipes():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit(fresh=fresh, run_epoch=run_epoch, epochs=1, steps_per_epoch=0, checkpoint="x.pt", progress=False)
    assert mix_seed(1, 2) == mix_seed(1, 2) != mix_seed(2, 1)
    assert [lr_at(e, 10, 1.0, 0.1, 0.2) for e in range(10)] == [1.0] * 8 + [0.1] * 2
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], 0.1)
    opt = make_optimizer("adamw", [torch.zeros(1, requires_grad=True)], 0.1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_scheduler({"schedule": "cosine", "lr": 0.1, "epochs": 1}, opt, 1)
