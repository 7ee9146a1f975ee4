"""Distributed runs: which rank talks to powertrain, and how every rank gets
rank 0's decision."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import powertrain as pt
import powertrain._client as client
from powertrain import _ranks
from conftest import reply

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(pt.__file__)))


# -- detect ----------------------------------------------------------------------


def test_a_single_process_is_rank_0_of_1():
    assert _ranks.detect({}) == _ranks.Rank()
    assert _ranks.detect({}).leader and _ranks.detect({}).speaker


def test_torchrun_variables():
    r = _ranks.detect({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                       "GROUP_RANK": "1"})
    assert (r.rank, r.world_size, r.local_rank, r.node_rank, r.launcher) == (3, 4, 1, 1, "torchrun")
    assert not r.leader and not r.speaker


def test_torchrun_before_the_slurm_step_that_started_it():
    r = _ranks.detect({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                       "SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_STEP_ID": "0"})
    assert (r.rank, r.launcher) == (1, "torchrun")


def test_srun_tasks_but_not_the_batch_script():
    step = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2", "SLURM_STEP_ID": "0"}
    r = _ranks.detect(step)
    assert (r.rank, r.world_size, r.local_rank, r.node_rank, r.launcher) == (5, 8, 1, 2, "slurm")
    # The batch script of `sbatch --ntasks 8` is one process: rank 0 of 1.
    assert _ranks.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) == _ranks.Rank()


def test_the_step_of_the_powertrain_that_started_the_program_is_not_a_rank():
    # powertrain ran as task 1 of an srun step (a meter per node) and started the program itself.
    step = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_NTASKS": "2",
            "SLURM_LOCALID": "0", "SLURM_NODEID": "1"}
    assert _ranks.detect({**step, "POWERTRAIN_SLURM_TASK": "7.0.1"}) == _ranks.Rank()
    # The program started through srun by powertrain: a step of its own, so its ranks count.
    assert _ranks.detect({**step, "SLURM_STEP_ID": "1", "POWERTRAIN_SLURM_TASK": "7.0.1"}).rank == 1


def test_mpi_local_rank_from_the_local_size_when_missing():
    r = _ranks.detect({"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALNRANKS": "2"})
    assert (r.rank, r.local_rank, r.node_rank, r.launcher) == (3, 1, 1, "mpi")


@pytest.mark.parametrize("env", [{"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"},
                                 {"RANK": "-1", "WORLD_SIZE": "2"}])
def test_bad_rank_variables_are_named(env):
    with pytest.raises(ValueError, match="RANK"):
        _ranks.detect(env)


# -- under a fake powertrain ----------------------------------------------------------

FOLLOWER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    import powertrain as pt
    seen = []
    for n in pt.epochs(10):
        with pt.phase("eval"):
            pass
        d = pt.report(0.5)
        seen.append(f"{n}:{int(d.stop)}{int(d.best)}")
    pt.test(0.5)
    print(" ".join(seen))
""")


def start_follower(rank: int, local_rank: int, **extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()}
    env.update({"RANK": str(rank), "WORLD_SIZE": "3", "LOCAL_RANK": str(local_rank), **extra})
    return subprocess.Popen([sys.executable, "-c", FOLLOWER, PACKAGE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_one_rank_talks_and_every_rank_gets_its_decision(fake, monkeypatch):
    # Rank 0 stops at epoch 3 on powertrain's word; epoch 2 is not the best.
    fake.responder = lambda e: reply(e["epoch"], "stop" if e["epoch"] == 3 else "continue", best=e["epoch"] != 2,
                                     reason="patience")
    followers = [start_follower(1, 1), start_follower(2, 2)]
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    client._reset()
    mine = []
    for n in pt.epochs(10):
        d = pt.report(0.5)
        mine.append(f"{n}:{int(d.stop)}{int(d.best)}")
    pt.test(0.5)
    outs = [p.communicate(timeout=60) for p in followers]
    for p, (out, err) in zip(followers, outs):
        assert p.returncode == 0, err
        assert out.split() == mine == ["1:01", "2:00", "3:11"]
    events = fake.wait_for(9)
    assert [e["event"] for e in events].count("hello") == 1  # one connection, rank 0's
    assert [e["epoch"] for e in events if e["event"] == "epoch_end"] == [1, 2, 3]


def test_a_follower_without_rank_0_says_so_within_its_timeout(fake, monkeypatch):
    monkeypatch.setattr(client, "REPLY_TIMEOUT_S", 0.3)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    client._reset()
    with pytest.raises(RuntimeError, match="rank 0 shared no decision for epoch 1"):
        with pt.epoch():
            pass
        pt.report(0.5)
    assert fake.events == []  # it never connected


class FakeDist:
    """torch.distributed as far as the package uses it: rank 0's object broadcast."""

    def __init__(self, shared):
        self.shared = shared

    def broadcast_object_list(self, box, src):
        assert src == 0 and box == [None]
        box[0] = self.shared


def test_a_node_without_powertrains_socket_follows_rank_0(monkeypatch, short_dir):
    # srun over two nodes from one powertrain: node 1's local rank 0 has the
    # variable, but the socket is on node 0's host.
    monkeypatch.setenv("POWERTRAIN_SOCKET", os.path.join(short_dir, "elsewhere", "events.sock"))
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_STEP_ID", "1")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    monkeypatch.setenv("SLURM_NODEID", "1")
    monkeypatch.setattr(_ranks, "_torch_group", lambda: FakeDist({"stop": True, "best": False, "reason": "patience"}))
    client._reset()
    with pt.epoch():
        pass
    assert pt.report(0.5) == pt.Decision(stop=True, best=False, reason="patience")  # no "cannot connect"


def node_one_of_a_trial(monkeypatch, folder: str) -> None:
    """Global rank 1, local rank 0, on node "n2" of a Slurm trial over two nodes."""
    for k, v in {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "1", "SLURM_PROCID": "1", "SLURM_NTASKS": "2",
                 "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURMD_NODENAME": "n2",
                 "POWERTRAIN_NODE_SOCKETS": folder}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(_ranks, "_torch_group", lambda: FakeDist({"stop": False, "best": True, "reason": ""}))
    client._reset()


def test_a_trial_over_nodes_talks_to_its_own_nodes_meter(fake, monkeypatch, short_dir):
    # The node's meter left where it listens; node 0's powertrain (the fake's
    # socket is POWERTRAIN_SOCKET here too) must not be the one talked to.
    from conftest import FakePowertrain
    meter = FakePowertrain(os.path.join(short_dir, "m"))
    with open(os.path.join(short_dir, "socket-n2"), "w") as f:
        f.write(meter.path)
    node_one_of_a_trial(monkeypatch, short_dir)
    try:
        with pt.epoch():
            pass
        assert pt.report(0.5) == pt.Decision(stop=False, best=True, reason="")  # rank 0's, not the meter's
        assert [e["event"] for e in meter.wait_for(3)] == ["hello", "epoch_start", "epoch_end"]
        assert fake.events == []
    finally:
        client._reset()
        meter.close()


def test_a_node_of_a_trial_without_a_meter_follows_rank_0(fake, monkeypatch, short_dir):
    node_one_of_a_trial(monkeypatch, short_dir)  # no socket-n2: this node has no meter
    with pt.epoch():
        pass
    assert pt.report(0.5).best
    assert fake.events == []


def test_a_lost_node_meter_leaves_the_program_running(fake, monkeypatch, short_dir):
    from conftest import FakePowertrain
    meter = FakePowertrain(os.path.join(short_dir, "m"))
    meter.hang_up_after = "epoch_start"
    with open(os.path.join(short_dir, "socket-n2"), "w") as f:
        f.write(meter.path)
    node_one_of_a_trial(monkeypatch, short_dir)
    killed = []
    monkeypatch.setattr(client.os, "kill", lambda pid, sig: killed.append(sig))
    try:
        with pt.epoch():
            pass
        assert pt.report(0.5).best  # rank 0's decision still comes
        assert killed == []  # only node 0's powertrain ends the program
    finally:
        client._reset()
        meter.close()


def test_resume_state_is_saved_by_rank_0_only(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("POWERTRAIN_MAX_EPOCHS", "1")
    state_file = tmp_path / "state.pt"
    monkeypatch.setenv("POWERTRAIN_SAVE_STATE", str(state_file))
    client._reset()
    folder = os.path.dirname(os.environ["POWERTRAIN_SOCKET"])
    with open(os.path.join(folder, "decision-1.json"), "w") as f:
        f.write('{"stop": true, "best": true, "reason": "limit"}')
    pytest.importorskip("torch")
    state = pt.resume(extra={"x": 1})
    for _ in pt.epochs():
        assert pt.report(0.5).stop
    assert state.epoch == 1
    assert not state_file.exists()
