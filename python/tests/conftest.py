"""A fake powertrain for the protocol client's tests: a Unix socket server in a
thread that records every event and answers epoch_end through a responder."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest

import powertrain._client as client

Responder = Callable[[Dict[str, Any]], Optional[bytes]]

# A launcher's rank variables (torchrun, Slurm, MPI): the tests set their own.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "SLURM_PROCID",
                      "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID", "SLURM_STEP_ID", "SLURM_JOB_ID", "OMPI_COMM_WORLD_RANK",
                      "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                      "OMPI_COMM_WORLD_NODE_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")

CLOSE = b"<close>"  # a responder's answer that makes the server hang up instead


def reply(epoch: int, action: str = "continue", best: bool = True, reason: str = "") -> bytes:
    return (json.dumps({"reply": "epoch_end", "epoch": epoch, "action": action, "best": best,
                        "reason": reason}) + "\n").encode()


class FakePowertrain:
    def __init__(self, path: str) -> None:
        self.path = path
        self.events: List[Dict[str, Any]] = []
        self.responder: Responder = lambda e: reply(e["epoch"])
        self.hang_up_after: Optional[str] = None  # close after receiving this event
        self.cond = threading.Condition()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        self.conn: Optional[socket.socket] = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conn = conn
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                event = json.loads(line)
                with self.cond:
                    self.events.append(event)
                    self.cond.notify_all()
                answer = self.responder(event) if event.get("event") == "epoch_end" else None
                if answer == CLOSE or self.hang_up_after == event.get("event"):
                    conn.close()
                    return
                if answer:
                    conn.sendall(answer)

    def wait_for(self, count: int, timeout: float = 5.0) -> List[Dict[str, Any]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)

    def close(self) -> None:
        self.listener.close()
        if self.conn is not None:
            self.conn.close()


@pytest.fixture(autouse=True)
def clean_client(monkeypatch: pytest.MonkeyPatch):
    """Each test starts outside powertrain with a fresh client."""
    for name in list(os.environ):
        if name.startswith("POWERTRAIN_") or name in LAUNCHER_VARIABLES:
            monkeypatch.delenv(name)
    client._reset()
    yield
    client._reset()


@pytest.fixture
def short_dir():
    # Unix socket paths are limited to 107 bytes: keep them short.
    path = tempfile.mkdtemp(prefix="pt-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, short_dir: str):
    """A running fake powertrain, with POWERTRAIN_SOCKET pointing at it."""
    server = FakePowertrain(os.path.join(short_dir, "s"))
    monkeypatch.setenv("POWERTRAIN_SOCKET", server.path)
    monkeypatch.setenv("POWERTRAIN_PROTOCOL", "1")
    yield server
    client._reset()  # first: the client's watcher must not see the server hang up
    server.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
