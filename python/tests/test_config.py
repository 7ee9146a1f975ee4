"""config(): the POWERTRAIN_* settings."""
from __future__ import annotations

import pytest

import powertrain as pt

SETTINGS = {
    "POWERTRAIN_SOCKET": "/nonexistent/socket",  # config() never connects
    "POWERTRAIN_RUN_ID": "42",
    "POWERTRAIN_BATCH_SIZE": "64",
    "POWERTRAIN_LEARNING_RATE": "0.01",
    "POWERTRAIN_SEED": "7",
    "POWERTRAIN_MAX_EPOCHS": "20",
    "POWERTRAIN_DEVICE": "cuda:0",
    "POWERTRAIN_THREADS": "4",
    "POWERTRAIN_TASKS": "smiling, male,,young",
    "POWERTRAIN_INIT_ENCODER": "",
    "POWERTRAIN_FREEZE_ENCODER": "1",
    "POWERTRAIN_CHECKPOINT": "/runs/42/best.pt",
    "POWERTRAIN_ENCODER_CHECKPOINT": "",
    "POWERTRAIN_DATA_DIR": "/data",
    "POWERTRAIN_OPTIMIZER": "sgd",
    "POWERTRAIN_MOMENTUM": "0.9",
    "POWERTRAIN_WEIGHT_DECAY": "0.0005",
    "POWERTRAIN_SUBSET": "0.25",
}


def set_env(monkeypatch, values):
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_settings_are_parsed(monkeypatch):
    set_env(monkeypatch, SETTINGS)
    c = pt.config()
    assert c == pt.Config(run_id="42", batch_size=64, learning_rate=0.01, seed=7, max_epochs=20, device="cuda:0",
                          threads=4, tasks=["smiling", "male", "young"], init_encoder=None, freeze_encoder=True,
                          checkpoint="/runs/42/best.pt", encoder_checkpoint=None, data_dir="/data",
                          optimizer="sgd", momentum=0.9, weight_decay=0.0005, subset=0.25)
    assert c.get("batch_size", 1) == 64
    assert c.get("init_encoder", "none") == "none"


@pytest.mark.parametrize("raw, expected", [("0", False), ("1", True), ("true", True), ("false", False)])
def test_freeze_encoder_forms(monkeypatch, raw, expected):
    set_env(monkeypatch, {"POWERTRAIN_SOCKET": "/x", "POWERTRAIN_FREEZE_ENCODER": raw})
    assert pt.config().freeze_encoder is expected


def test_empty_task_list_and_missing_settings(monkeypatch):
    set_env(monkeypatch, {"POWERTRAIN_SOCKET": "/x", "POWERTRAIN_TASKS": ""})
    c = pt.config()
    assert c.tasks == []
    assert c.batch_size is None and c.get("batch_size", 32) == 32


def test_outside_powertrain_everything_is_none(monkeypatch):
    set_env(monkeypatch, {k: v for k, v in SETTINGS.items() if k != "POWERTRAIN_SOCKET"})
    c = pt.config()
    assert all(value is None for value in c.as_dict().values())
    assert c.get("learning_rate", 0.1) == 0.1


@pytest.mark.parametrize("name, raw", [("POWERTRAIN_BATCH_SIZE", "sixty"), ("POWERTRAIN_LEARNING_RATE", "fast"),
                                       ("POWERTRAIN_FREEZE_ENCODER", "maybe")])
def test_malformed_value_names_the_variable(monkeypatch, name, raw):
    set_env(monkeypatch, {"POWERTRAIN_SOCKET": "/x", name: raw})
    with pytest.raises(ValueError, match=f"{name}='{raw}' is not"):
        pt.config()


def test_get_rejects_unknown_settings():
    with pytest.raises(AttributeError, match="no setting 'batchsize'"):
        pt.config().get("batchsize")


def test_every_run_setting_of_powertrains_table_is_parsed(monkeypatch):
    # _settings.py is generated from powertrain's table of run settings (a C++
    # test fails when they differ): config() reads every row of it.
    from powertrain import _config, _settings
    samples = {"integer": ("3", 3), "float": ("0.5", 0.5), "boolean": ("1", True), "string": ("x", "x"),
               "list": ("a, b", ["a", "b"])}
    env = {"POWERTRAIN_SOCKET": "/x"}
    for _, var, kind in _settings.SETTINGS:
        env[var] = samples[kind][0]
    set_env(monkeypatch, env)
    c = pt.config()
    for name, _, kind in _settings.SETTINGS:
        assert getattr(c, name) == samples[kind][1], name
    assert set(c.as_dict()) == set(_config._FIELDS)
