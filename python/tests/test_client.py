"""The protocol client against a fake powertrain, and outside powertrain."""
from __future__ import annotations

import json
import math
import os
import socket
import time

import pytest

import powertrain as pt
import powertrain._client as client
from conftest import reply


def names(events):
    return [e["event"] for e in events]


def without_clock(event):
    """The event without "mono_ns", which boundary events must carry (a past
    CLOCK_MONOTONIC time)."""
    event = dict(event)
    if event["event"] in ("epoch_start", "phase", "epoch_end"):
        mono_ns = event.pop("mono_ns")
        assert isinstance(mono_ns, int) and 0 < mono_ns <= time.monotonic_ns()
    return event


# -- outside powertrain --------------------------------------------------------


def test_outside_powertrain_nothing_touches_a_socket(monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("a socket was opened outside powertrain")

    monkeypatch.setattr(socket, "socket", no_socket)
    assert not pt.active()
    seen = []
    for n in pt.epochs(4):
        pt.progress(1, 10, 0.5)
        with pt.phase("eval"):
            pass
        seen.append((n, pt.report([0.5, 0.4, 0.5, 0.6][n - 1])))
    pt.test(0.9, task_metrics=[0.1])
    pt.checkpoint("model.pt")
    assert [n for n, _ in seen] == [1, 2, 3, 4]
    # best: strictly higher than every earlier metric; never stop.
    assert [d.best for _, d in seen] == [True, False, False, True]
    assert not any(d.stop for _, d in seen)
    assert not pt.should_stop()


def test_outside_powertrain_report_without_epoch_and_nan_are_harmless():
    assert pt.report(float("nan")) == pt.Decision(stop=False, best=False, reason="")
    assert pt.report(1.0).best
    with pt.epoch() as n:
        pass
    with pt.epoch() as m:  # the previous epoch was never reported: fine outside
        pass
    assert (n, m) == (1, 2)


def test_arguments_are_checked_everywhere():
    with pytest.raises(ValueError, match="phase must be"):
        with pt.phase("test"):
            pass
    with pytest.raises(ValueError, match="checkpoint kind"):
        pt.checkpoint("x", kind="weights")


# -- events --------------------------------------------------------------------


def test_events_in_order(fake, tmp_path):
    assert pt.active()
    with pt.epoch() as n:
        pt.progress(1, 10, 0.75)
        with pt.phase("eval"):
            pass
        decision = pt.report(0.8, val_loss=0.3, train_loss=0.4, samples=128, task_metrics=[0.7, 0.9])
    pt.checkpoint(tmp_path / "best.pt")
    pt.test(0.79, task_metrics=[0.6, 0.95])
    events = [without_clock(e) for e in fake.wait_for(8)]
    assert n == 1
    assert decision == pt.Decision(stop=False, best=True, reason="")
    assert names(events) == ["hello", "epoch_start", "progress", "phase", "phase", "epoch_end", "checkpoint",
                             "test"]
    hello = events[0]
    assert hello["protocol"] == 1 and hello["pid"] == os.getpid() and hello["framework"]
    assert events[1] == {"event": "epoch_start", "epoch": 1}
    assert events[2] == {"event": "progress", "step": 1, "steps": 10, "loss": 0.75}
    assert [e["phase"] for e in events[3:5]] == ["eval", "train"]
    assert events[5] == {"event": "epoch_end", "epoch": 1, "val_metric": 0.8, "val_loss": 0.3,
                         "train_loss": 0.4, "samples": 128, "val_task_metrics": [0.7, 0.9]}
    assert events[6] == {"event": "checkpoint", "path": str(tmp_path / "best.pt"), "kind": "model"}
    assert events[7] == {"event": "test", "metric": 0.79, "task_metrics": [0.6, 0.95]}


def test_optional_fields_are_null_and_non_finite_numbers_are_strings(fake):
    with pt.epoch():
        pt.report(float("inf"), val_loss=float("nan"))
    pt.test(0.5)
    events = [without_clock(e) for e in fake.wait_for(4)]
    assert events[2] == {"event": "epoch_end", "epoch": 1, "val_metric": "inf", "val_loss": "nan",
                         "train_loss": None, "samples": None}
    assert events[3] == {"event": "test", "metric": 0.5}


def test_progress_is_rate_limited_lazy_and_train_only(fake, monkeypatch):
    monkeypatch.setattr(client, "PROGRESS_INTERVAL_S", 0.2)

    class Loss:  # stands for a tensor whose conversion costs a device sync
        conversions = 0

        def __float__(self):
            Loss.conversions += 1
            return 2.5

    pt.progress(1, 100, Loss())  # outside an epoch: dropped
    with pt.epoch():
        for step in range(1, 50):
            pt.progress(step, 100, Loss())
        pt.progress(100, 100, Loss())  # the last step always goes
        time.sleep(0.25)
        pt.progress(3, 100, float("nan"))
        with pt.phase("eval"):
            time.sleep(0.25)
            pt.progress(4, 100, 1.0)  # eval phase: dropped
        pt.report(0.1)
    events = [e for e in fake.wait_for(8) if e["event"] == "progress"]
    assert [(e["step"], e["loss"]) for e in events] == [(1, 2.5), (100, 2.5), (3, "nan")]
    assert Loss.conversions == 2


def test_epochs_numbers_follow_on(fake):
    for _ in pt.epochs(3):
        pt.report(0.5)
    events = fake.wait_for(7)
    starts = [e["epoch"] for e in events if e["event"] == "epoch_start"]
    ends = [e["epoch"] for e in events if e["event"] == "epoch_end"]
    assert starts == ends == [1, 2, 3]


def test_epochs_default_to_the_trials_max_epochs(fake, monkeypatch):
    monkeypatch.setenv("POWERTRAIN_MAX_EPOCHS", "2")
    assert [n for n in pt.epochs() if pt.report(0.1) is not None] == [1, 2]


# -- replies -------------------------------------------------------------------


def test_report_waits_for_the_reply(fake):
    def slow(event):
        time.sleep(0.3)
        return reply(event["epoch"], best=False, reason="not better")

    fake.responder = slow
    with pt.epoch():
        started = time.monotonic()
        decision = pt.report(0.9)
    assert time.monotonic() - started >= 0.3
    # powertrain decides what is best, not the client
    assert decision == pt.Decision(stop=False, best=False, reason="not better")


def test_reply_in_pieces(fake):
    def pieces(event):
        line = reply(event["epoch"], reason="split")
        fake.conn.sendall(line[:7])
        time.sleep(0.1)
        return line[7:]

    fake.responder = pieces
    with pt.epoch():
        assert pt.report(0.9).reason == "split"


def test_stop_ends_the_epoch_loop(fake):
    fake.responder = lambda e: reply(e["epoch"], action="stop" if e["epoch"] == 2 else "continue",
                                     best=e["epoch"] == 1, reason="patience")
    decisions = []
    for _ in pt.epochs(10):
        decisions.append(pt.report(0.5))
    assert [(d.stop, d.best) for d in decisions] == [(False, True), (True, False)]
    assert decisions[-1].reason == "patience"
    assert pt.should_stop()
    pt.test(0.5)
    assert names(fake.wait_for(6)) == ["hello", "epoch_start", "epoch_end", "epoch_start", "epoch_end", "test"]


@pytest.mark.parametrize("answer", [
    b"not json\n",
    b"[1, 2]\n",
    b'{"reply": "hello", "epoch": 1, "action": "continue", "best": true}\n',
    b'{"reply": "epoch_end", "epoch": 2, "action": "continue", "best": true}\n',
    b'{"reply": "epoch_end", "epoch": true, "action": "continue", "best": true}\n',
    b'{"reply": "epoch_end", "epoch": 1, "action": "pause", "best": true}\n',
    b'{"reply": "epoch_end", "epoch": 1, "action": "stop", "best": "yes"}\n',
    b'{"reply": "epoch_end", "epoch": 1, "action": "stop"}\n',
    b"\xff\xfe\n",
])
def test_malformed_reply_raises_protocol_error(fake, answer):
    fake.responder = lambda e: answer
    with pt.epoch():
        with pytest.raises(pt.ProtocolError) as caught:
            pt.report(0.5)
    assert isinstance(caught.value, RuntimeError)
    assert "\n" not in str(caught.value)


def test_overlong_reply_raises(fake):
    fake.responder = lambda e: b"x" * (client.MAX_LINE_BYTES + 10)
    with pt.epoch():
        with pytest.raises(pt.ProtocolError, match="longer than"):
            pt.report(0.5)


def test_no_reply_times_out(fake, monkeypatch):
    monkeypatch.setattr(client, "REPLY_TIMEOUT_S", 0.3)
    fake.responder = lambda e: None
    with pt.epoch():
        with pytest.raises(RuntimeError, match="did not answer epoch 1 within 0.3 s"):
            pt.report(0.5)


# -- misuse under powertrain ---------------------------------------------------


def test_unreported_epoch_and_stray_report_raise_under_powertrain(fake):
    with pt.epoch():
        pass
    with pytest.raises(RuntimeError, match="epoch 1 was not reported"):
        with pt.epoch():
            pass
    pt.report(0.5)  # reporting after the block is fine
    with pytest.raises(RuntimeError, match="outside an epoch"):
        pt.report(0.5)


def test_other_protocol_version_is_refused(fake, monkeypatch):
    monkeypatch.setenv("POWERTRAIN_PROTOCOL", "2")
    with pytest.raises(RuntimeError, match="protocol 2"):
        with pt.epoch():
            pass


def test_missing_socket_is_a_clear_error(monkeypatch, short_dir):
    monkeypatch.setenv("POWERTRAIN_SOCKET", os.path.join(short_dir, "absent"))
    with pytest.raises(RuntimeError, match="cannot connect to powertrain"):
        with pt.epoch():
            pass


def test_forked_child_stays_silent(fake):
    with pt.epoch():
        pt.report(0.5)
    pid = os.fork()
    if pid == 0:  # a data-loader worker, say: must not write on the parent's connection
        code = 0
        try:
            with pt.epoch():
                pt.progress(1, 2, 0.1)
                if pt.report(0.9).stop:
                    code = 1
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pt.test(0.5)  # anything the child sent would arrive before this, on the same stream
    assert names(fake.wait_for(4)) == ["hello", "epoch_start", "epoch_end", "test"]


def test_decision_and_config_types():
    d = pt.Decision(stop=True, best=False, reason="x")
    with pytest.raises(Exception):
        d.stop = False  # frozen
    assert json.loads(json.dumps({"a": client._number(math.nan)})) == {"a": "nan"}
    assert client._number(-math.inf) == "-inf" and client._number(None) is None


def test_a_checkpoint_path_that_is_not_utf8_is_sent_as_text(fake, tmp_path):
    # Issue 24: a file name with bytes that are not UTF-8 (a str with
    # surrogate escapes, or bytes) made an event powertrain cannot read (or a
    # TypeError), failing the run over an informational event.
    name = os.fsdecode(b"caf\xe9.pt")
    pt.checkpoint(tmp_path / name)
    pt.checkpoint(os.fsencode(str(tmp_path)) + b"/raw\xff.pt", kind="encoder")
    pt.test(0.5)
    events = fake.wait_for(4)
    paths = [e["path"] for e in events if e["event"] == "checkpoint"]
    assert len(paths) == 2
    for p in paths:
        p.encode("utf-8")  # no lone surrogates: valid UTF-8, as powertrain requires
    assert paths[0] == str(tmp_path) + "/caf\ufffd.pt"
    assert paths[1] == str(tmp_path) + "/raw\ufffd.pt"
    assert events[-1]["event"] == "test"
