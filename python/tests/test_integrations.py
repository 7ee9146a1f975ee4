"""The callbacks for Hugging Face's Trainer and PyTorch Lightning, with the real
frameworks (scripts/requirements.txt pins them), against the fake powertrain
of conftest.py and on their own. Tiny models and data: seconds each."""
from __future__ import annotations

import os

import pytest
import torch

import powertrain._client as client
from conftest import FakePowertrain, reply, wait_until

transformers = pytest.importorskip("transformers")
lightning = pytest.importorskip("lightning")


def native_meter() -> bool:
    try:
        import powertrain._native  # noqa: F401
    except ImportError:
        return False
    return True


def serve(monkeypatch, short_dir, name, max_epochs, stop_at=None, start=None, resume_from=None, save_state=None):
    """A fake powertrain for one segment: stop after epoch `stop_at` (default
    max_epochs), best when the metric is the highest so far."""
    client._reset()
    server = FakePowertrain(os.path.join(short_dir, name))
    stop_at = stop_at or max_epochs
    best = {"metric": None}

    def respond(e):
        metric = float(e["val_metric"])
        is_best = best["metric"] is None or metric > best["metric"]
        if is_best:
            best["metric"] = metric
        return reply(e["epoch"], "stop" if e["epoch"] >= stop_at else "continue", best=is_best)

    server.responder = respond
    monkeypatch.setenv("POWERTRAIN_SOCKET", server.path)
    monkeypatch.setenv("POWERTRAIN_MAX_EPOCHS", str(max_epochs))
    for var, value in (("POWERTRAIN_START_EPOCH", start), ("POWERTRAIN_RESUME_FROM", resume_from),
                       ("POWERTRAIN_SAVE_STATE", save_state)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(value))
    return server


def ended(server):
    """The events of a finished segment, the connection closed."""
    client._reset()
    events = list(server.events)
    server.close()
    return events


def epoch_ends(events):
    return [(e["epoch"], e["val_metric"], e["val_loss"]) for e in events if e["event"] == "epoch_end"]


# -- Hugging Face ---------------------------------------------------------------

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from powertrain.integrations.transformers import PowertrainCallback as HFCallback  # noqa: E402
from powertrain.integrations.transformers import resume_from_checkpoint  # noqa: E402


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = (self.x[:, 0] + 0.5 * self.x[:, 1] > 0).long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                       torch.nn.Linear(16, 2))

    def forward(self, x, labels=None):
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def hf_accuracy(p):
    logits, labels = p
    return {"accuracy": float((torch.as_tensor(logits).argmax(-1) == torch.as_tensor(labels)).float().mean())}


class Recorder(TrainerCallback):
    """Stands in for a reporting callback (TensorBoard, W&B): what reaches on_log."""

    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))


def hf_train(tmp_path, max_epochs, callback, extra_callbacks=(), resume=None):
    torch.manual_seed(0)
    model = TinyNet()
    args = TrainingArguments(output_dir=str(tmp_path / "hf-out"), per_device_train_batch_size=16,
                             learning_rate=0.02, num_train_epochs=max_epochs, lr_scheduler_type="constant",
                             eval_strategy="epoch", save_strategy="no", logging_strategy="epoch", seed=0,
                             use_cpu=True, report_to=[], disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=Pairs(160, 1), eval_dataset=Pairs(64, 2),
                      compute_metrics=hf_accuracy, callbacks=[*extra_callbacks, callback])
    trainer.train(resume_from_checkpoint=resume)
    return trainer, model


def test_hf_epochs_are_reported_and_powertrain_stops_the_trainer(monkeypatch, short_dir, tmp_path):
    server = serve(monkeypatch, short_dir, "s", max_epochs=4, stop_at=2)
    cb = HFCallback(metric="accuracy")
    trainer, _ = hf_train(tmp_path, 4, cb)
    events = ended(server)
    assert [e["epoch"] for e in events if e["event"] == "epoch_start"] == [1, 2]
    assert [e["phase"] for e in events if e["event"] == "phase"] == ["eval", "eval"]
    ends = epoch_ends(events)
    assert [n for n, _, _ in ends] == [1, 2]
    assert trainer.state.epoch == 2, "should_training_stop ended the Trainer after epoch 2"
    assert cb.last.stop
    evaluations = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    assert [h["eval_accuracy"] for h in evaluations] == [m for _, m, _ in ends]


def test_hf_a_continued_segment_goes_on_from_the_trainers_checkpoint(monkeypatch, short_dir, tmp_path):
    server = serve(monkeypatch, short_dir, "a", max_epochs=3)
    hf_train(tmp_path / "whole", 3, HFCallback())
    whole = epoch_ends(ended(server))
    assert [n for n, _, _ in whole] == [1, 2, 3]

    state = tmp_path / "state" / "seg.state.pt"
    server = serve(monkeypatch, short_dir, "b", max_epochs=1, save_state=state)
    hf_train(tmp_path / "first", 1, HFCallback())
    first = epoch_ends(ended(server))
    assert state.is_dir() and (state / "trainer_state.json").is_file() and (state / "powertrain-callback.pt").is_file()
    assert not [p for p in state.parent.iterdir() if p.name != state.name], "no temporary folder is left"

    server = serve(monkeypatch, short_dir, "c", max_epochs=3, start=2, resume_from=state)
    assert resume_from_checkpoint() == str(state)
    cb = HFCallback()
    hf_train(tmp_path / "second", 3, cb, resume=resume_from_checkpoint())
    second = epoch_ends(ended(server))
    assert [n for n, _, _ in second] == [2, 3]
    for (n, metric, loss), (m, whole_metric, whole_loss) in zip(first + second, whole):
        assert n == m
        assert metric == pytest.approx(whole_metric, abs=1e-6)
        assert loss == pytest.approx(whole_loss, rel=1e-5)


def test_hf_a_continued_segment_without_its_checkpoint_is_refused(monkeypatch, short_dir, tmp_path):
    server = serve(monkeypatch, short_dir, "a", max_epochs=3, start=2, resume_from=tmp_path / "missing")
    with pytest.raises(RuntimeError, match="pass resume_from_checkpoint"):
        hf_train(tmp_path, 3, HFCallback())
    ended(server)


@pytest.mark.skipif(not native_meter(), reason="the native module powertrain._native is not built")
def test_hf_standalone_logs_each_epochs_energy_through_the_trainer(tmp_path):
    recorder = Recorder()  # registered before the callback, as the Trainer's own reporters are
    trainer, _ = hf_train(tmp_path, 2, HFCallback(), extra_callbacks=[recorder])
    energy = [log for log in recorder.logs if "energy/epoch_j" in log]
    assert [log["epoch"] for log in energy] == [1.0, 2.0]
    assert all(log["energy/epoch_j"] > 0 and log["energy/epoch_s"] > 0 for log in energy)
    assert len([h for h in trainer.state.log_history if "energy/epoch_j" in h]) == 2


# -- Lightning ------------------------------------------------------------------

import lightning as L  # noqa: E402
from lightning.pytorch.loggers import Logger  # noqa: E402

from powertrain.integrations.lightning import PowertrainCallback as LCallback  # noqa: E402
from powertrain.integrations.lightning import ckpt_path  # noqa: E402


class TinyModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                       torch.nn.Linear(16, 2))

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        out = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(out, y))
        self.log("val_acc", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.02)


class RecordingLogger(Logger):
    def __init__(self):
        super().__init__()
        self.metrics = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.metrics.append(dict(metrics))


def loaders():
    def data(n, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 6, generator=g)
        return torch.utils.data.TensorDataset(x, (x[:, 0] + 0.5 * x[:, 1] > 0).long())
    return (torch.utils.data.DataLoader(data(160, 1), batch_size=16, shuffle=True),
            torch.utils.data.DataLoader(data(64, 2), batch_size=64))


def l_fit(max_epochs, callback, logger=False, ckpt=None):
    L.seed_everything(0, verbose=False)
    module = TinyModule()
    train, val = loaders()
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, callbacks=[callback], logger=logger,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(module, train, val, ckpt_path=ckpt)
    return trainer, module


def test_lightning_epochs_are_reported_and_powertrain_stops_the_trainer(monkeypatch, short_dir):
    server = serve(monkeypatch, short_dir, "s", max_epochs=4, stop_at=2)
    cb = LCallback(monitor="val_acc")
    trainer, _ = l_fit(4, cb)
    events = ended(server)
    assert [e["epoch"] for e in events if e["event"] == "epoch_start"] == [1, 2]
    assert [e["phase"] for e in events if e["event"] == "phase"] == ["eval", "eval"]
    assert [n for n, _, _ in epoch_ends(events)] == [1, 2]
    assert trainer.current_epoch == 2, "trainer.should_stop ended fitting after epoch 2"


def test_lightning_a_continued_segment_goes_on_from_its_checkpoint(monkeypatch, short_dir, tmp_path):
    server = serve(monkeypatch, short_dir, "a", max_epochs=3)
    l_fit(3, LCallback())
    whole = epoch_ends(ended(server))
    assert [n for n, _, _ in whole] == [1, 2, 3]

    state = tmp_path / "state" / "seg.state.pt"
    server = serve(monkeypatch, short_dir, "b", max_epochs=1, save_state=state)
    l_fit(1, LCallback())
    first = epoch_ends(ended(server))
    assert state.is_file()
    assert [p.name for p in state.parent.iterdir()] == [state.name], "no temporary file is left"

    server = serve(monkeypatch, short_dir, "c", max_epochs=3, start=2, resume_from=state)
    cb = LCallback()
    trainer, _ = l_fit(3, cb, ckpt=ckpt_path())
    second = epoch_ends(ended(server))
    assert [n for n, _, _ in second] == [2, 3]
    for (n, metric, loss), (m, whole_metric, whole_loss) in zip(first + second, whole):
        assert n == m
        assert metric == pytest.approx(whole_metric, abs=1e-6)
        assert loss == pytest.approx(whole_loss, rel=1e-5)


@pytest.mark.skipif(not native_meter(), reason="the native module powertrain._native is not built")
def test_lightning_standalone_logs_each_epochs_energy_to_the_loggers():
    logger = RecordingLogger()
    l_fit(2, LCallback(), logger=logger)
    energy = [m for m in logger.metrics if "energy/epoch_j" in m]
    assert len(energy) == 2
    assert all(m["energy/epoch_j"] > 0 and m["energy/epoch_s"] > 0 for m in energy)
