"""Continued runs in the package: epochs numbered from POWERTRAIN_START_EPOCH,
and powertrain.resume(), against the fake powertrain of conftest.py."""
from __future__ import annotations

import os
import random
import warnings

import numpy
import pytest
import torch

import powertrain as pt
import powertrain._client as client
from conftest import FakePowertrain, reply, wait_until


def make(seed=0):
    """A small model with dropout, Adam, a cosine schedule and a loader generator."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=6)
    loader_gen = torch.Generator().manual_seed(seed + 1)
    return model, optimizer, scheduler, loader_gen


def train_epoch(model, optimizer, scheduler, gen):
    """One epoch that draws from every generator resume() keeps."""
    x = torch.randn(32, 8, generator=gen)
    noise = random.random() + float(numpy.random.rand())  # Python's and numpy's generators
    y = x.sum(1, keepdim=True) + noise
    loss = torch.nn.functional.mse_loss(model(x), y)  # dropout: torch's global generator
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss


def metric_of(model):
    with torch.no_grad():
        return float(-model[0].weight.abs().mean())


def segment(monkeypatch, short_dir, name, max_epochs, start=None, resume_from=None, save_state=None, stop_at=None):
    """Runs the script's loop as one segment under a fake powertrain that says
    stop after epoch `stop_at` (default max_epochs); returns (epochs seen,
    metrics, events, Resumable)."""
    client._reset()
    server = FakePowertrain(os.path.join(short_dir, name))
    stop_at = stop_at or max_epochs
    server.responder = lambda e: reply(e["epoch"], "stop" if e["epoch"] >= stop_at else "continue",
                                       best=e["epoch"] % 2 == 1)
    monkeypatch.setenv("POWERTRAIN_SOCKET", server.path)
    monkeypatch.setenv("POWERTRAIN_MAX_EPOCHS", str(max_epochs))
    for var, value in (("POWERTRAIN_START_EPOCH", start), ("POWERTRAIN_RESUME_FROM", resume_from),
                       ("POWERTRAIN_SAVE_STATE", save_state)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(value))
    random.seed(5)
    numpy.random.seed(6)
    model, optimizer, scheduler, gen = make()
    extra = {"steps": 0}
    state = pt.resume(model=model, optimizer=optimizer, scheduler=scheduler, extra=extra, generators=[gen])
    seen, metrics = [], []
    for n in pt.epochs():
        loss = train_epoch(model, optimizer, scheduler, gen)
        extra["steps"] += 1
        pt.progress(1, 1, loss)
        seen.append(n)
        metrics.append(metric_of(model))
        pt.report(val_metric=metrics[-1])
    restored = state.restore_best()
    pt.test(metric=metric_of(model) if restored else 0.0)
    assert wait_until(lambda: any(e["event"] == "test" for e in server.events))
    events = list(server.events)
    client._reset()
    server.close()
    return seen, metrics, events, state, extra


def test_a_continued_segment_trains_exactly_as_one_uninterrupted_run(monkeypatch, short_dir, tmp_path):
    whole, whole_metrics, _, whole_state, whole_extra = segment(monkeypatch, short_dir, "a", 6)
    assert whole == [1, 2, 3, 4, 5, 6]

    state_file = tmp_path / "seg" / "state.pt"
    first, first_metrics, _, first_state, _ = segment(monkeypatch, short_dir, "b", 2, save_state=state_file)
    assert first == [1, 2]
    assert state_file.is_file() and first_state.saved_to == str(state_file)
    assert [p.name for p in state_file.parent.iterdir()] == ["state.pt"], "no temporary file is left"

    # The next segment starts elsewhere: the generators were seeded anew by make() and segment().
    second, second_metrics, events, second_state, extra = segment(
        monkeypatch, short_dir, "c", 6, start=3, resume_from=state_file)
    assert second == [3, 4, 5, 6]
    assert [e["epoch"] for e in events if e["event"] == "epoch_start"] == [3, 4, 5, 6]
    assert second_state.resumed and second_state.start_epoch == 3
    assert first_metrics + second_metrics == whole_metrics  # bit for bit on the CPU
    assert extra["steps"] == whole_extra["steps"] == 6
    # The best model of the whole run: epoch 5 (the fake says best for odd epochs).
    assert second_state.best_epoch == whole_state.best_epoch == 5


def test_the_best_model_of_an_earlier_segment_is_restored(monkeypatch, short_dir, tmp_path):
    state_file = tmp_path / "state.pt"
    _, first_metrics, *_ = segment(monkeypatch, short_dir, "a", 1, save_state=state_file)  # epoch 1 is best
    # The continued segment stops after epoch 2, which is not best: the test is of epoch 1's model.
    _, second_metrics, events, state, _ = segment(monkeypatch, short_dir, "b", 2, start=2, resume_from=state_file)
    assert state.best_epoch == 1
    assert second_metrics[0] != first_metrics[0]
    test_event = [e for e in events if e["event"] == "test"][-1]
    assert test_event["metric"] == pytest.approx(first_metrics[0])


def test_nothing_is_saved_when_the_run_stops_before_its_limit(monkeypatch, short_dir, tmp_path):
    state_file = tmp_path / "state.pt"
    seen, *_ = segment(monkeypatch, short_dir, "a", 4, save_state=state_file, stop_at=2)  # converged at 2
    assert seen == [1, 2]
    assert not state_file.exists()


def test_a_state_that_does_not_end_before_the_start_epoch_is_refused(monkeypatch, short_dir, tmp_path):
    state_file = tmp_path / "state.pt"
    segment(monkeypatch, short_dir, "a", 2, save_state=state_file)
    with pytest.raises(RuntimeError, match="after epoch 2, but this run continues after epoch 3"):
        segment(monkeypatch, short_dir, "b", 6, start=4, resume_from=state_file)
    client._reset()


def test_a_missing_or_foreign_state_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("POWERTRAIN_SOCKET", "/nonexistent")
    monkeypatch.setenv("POWERTRAIN_START_EPOCH", "2")
    monkeypatch.setenv("POWERTRAIN_RESUME_FROM", str(tmp_path / "missing.pt"))
    with pytest.raises(RuntimeError, match="does not exist"):
        pt.resume(model=torch.nn.Linear(2, 2))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    monkeypatch.setenv("POWERTRAIN_RESUME_FROM", str(tmp_path / "other.pt"))
    with pytest.raises(RuntimeError, match="not a state written by powertrain.resume"):
        pt.resume(model=torch.nn.Linear(2, 2))


def test_epochs_are_numbered_from_the_start_epoch(fake, monkeypatch):
    monkeypatch.setenv("POWERTRAIN_START_EPOCH", "4")
    monkeypatch.setenv("POWERTRAIN_MAX_EPOCHS", "5")
    assert pt.start_epoch() == 4
    seen = []
    for n in pt.epochs():  # the reply continues; the limit is epoch 5
        seen.append(n)
        pt.report(val_metric=0.5)
    assert seen == [4, 5]
    starts = [e["epoch"] for e in fake.wait_for(5) if e["event"] == "epoch_start"]
    assert starts == [4, 5]


def test_outside_powertrain_resume_loads_and_saves_only_paths_it_is_given(tmp_path):
    model, optimizer, scheduler, gen = make()
    state = pt.resume(model=model, optimizer=optimizer)
    assert not state.resumed and state.start_epoch == 1
    for _ in pt.epochs(2):
        train_epoch(model, optimizer, scheduler, gen)
        pt.report(val_metric=metric_of(model))
    assert state.saved_to is None
    path = state.save(str(tmp_path / "mine.pt"))
    client._reset()
    model2, optimizer2, *_ = make(seed=3)
    again = pt.resume(model=model2, optimizer=optimizer2, resume_from=path)
    assert again.resumed and again.start_epoch == 3
    assert list(pt.epochs(4)) == [3, 4]  # numbered on from the state
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_progress_with_a_loss_that_requires_grad_does_not_warn(fake):
    loss = (torch.ones(1, requires_grad=True) * 0.5).sum()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pt.epoch():
            pt.progress(1, 1, loss)
            pt.report(val_metric=loss)
    events = fake.wait_for(4)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[0]["loss"] == 0.5
    assert [e for e in events if e["event"] == "epoch_end"][0]["val_metric"] == 0.5
