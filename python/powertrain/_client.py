"""Client side of powertrain's external-workload protocol, version 1.

powertrain starts the training program with POWERTRAIN_SOCKET set to a Unix
stream socket. The program sends one JSON object per line (events) and reads
one line back after each epoch_end. Outside powertrain every function here
is a harmless no-op: nothing touches a socket and nothing raises, apart from
ValueError for arguments that are wrong anywhere (a phase that is not
"train"/"eval", a checkpoint kind that is not "model"/"encoder").

Boundary events (epoch_start, phase, epoch_end) carry "mono_ns", the
CLOCK_MONOTONIC time at which the program took the boundary
(time.monotonic_ns()), so that powertrain can tell how late it got them.

Death of powertrain: its direct child is killed by the kernel
(PR_SET_PDEATHSIG), but a program started through a shell or a launcher is
not the direct child. So the client sends SIGTERM to its own process when it
sees the connection end, in two places:

* on every send and receive (a broken pipe, or end of file while waiting for
  a reply), which covers a program that talks to powertrain;
* in a daemon thread started on connecting, which covers a program that is
  busy in a long epoch. It polls the socket for POLLRDHUP only (peer closed),
  never for POLLIN, so it never wakes for a reply and never reads: report()
  stays the only reader, and nothing has to coordinate the two. On systems
  without POLLRDHUP (not Linux) the thread is not started.

End of file after the program sent "test" is expected (the run is over) and
does not signal.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from ._config import config
from . import _ranks

PROTOCOL = 1
#: Longest wait for powertrain's answer to an epoch_end, in seconds.
REPLY_TIMEOUT_S = 600.0
#: Least time between two progress events, in seconds.
PROGRESS_INTERVAL_S = 0.25
#: Longest line either side may send, in bytes (newline included).
MAX_LINE_BYTES = 64 * 1024

_PHASES = ("train", "eval")
_CHECKPOINT_KINDS = ("model", "encoder")


@dataclass(frozen=True)
class Decision:
    """powertrain's answer to an epoch's report."""

    stop: bool
    """True: stop training, test the best model, call test() and exit."""
    best: bool
    """True: this epoch has the best validation metric so far (save the model now)."""
    reason: str = ""
    """Why (e.g. the stopping rule that fired); may be empty."""


class ProtocolError(RuntimeError):
    """powertrain answered something this client does not understand."""


def active() -> bool:
    """True when running under powertrain (POWERTRAIN_SOCKET is set)."""
    return bool(os.environ.get("POWERTRAIN_SOCKET"))


def _scalar(x: Any) -> float:
    """float(x), where a tensor is read without its graph (float() of a tensor
    that requires grad warns)."""
    detach = getattr(x, "detach", None)
    if callable(detach):
        x = detach()
    return float(x)


def _number(x: Any) -> Union[float, str, None]:
    """A number for JSON: None stays null ("no value"); NaN and infinities,
    which strict JSON lacks, go as the strings "nan", "inf" and "-inf", so
    that powertrain sees a diverged loss or metric for what it is."""
    if x is None:
        return None
    value = _scalar(x)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _numbers(xs: Optional[Sequence[Any]]) -> Optional[List[Union[float, str, None]]]:
    return None if xs is None else [_number(x) for x in xs]


def _framework() -> str:
    torch = sys.modules.get("torch")  # named only if the program imported it
    version = getattr(torch, "__version__", None)
    if version:
        return f"torch {version}"
    return "python " + ".".join(str(v) for v in sys.version_info[:3])


class _Session:
    """The process's connection to powertrain and its epoch bookkeeping."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.sock: Optional[socket.socket] = None
        self.owner_pid = 0           # process that connected (forked children stay silent)
        self.buffer = b""
        self.epoch: Optional[int] = None  # last epoch started (None: none yet)
        self.open_epoch: Optional[int] = None  # started, not yet reported
        self.phase: Optional[str] = None
        self.last: Optional[Decision] = None
        self.best_metric: Optional[float] = None
        self.last_progress = -math.inf
        self.finished = False        # "test" sent: end of file is expected from now on
        self.gone = False            # the connection ended
        self.gone_lock = threading.RLock()  # not self.lock: report() holds that while waiting
        self.wake_fds: Optional[tuple] = None
        self.watcher: Optional[threading.Thread] = None
        # Called after every report with (epoch, metric, decision): powertrain.resume()'s bookkeeping.
        self.report_hooks: List[Any] = []
        self.rank = _ranks.detect()  # read once: a process does not change rank
        self.target: Optional[Tuple[Optional[str], bool]] = None  # _target(), once known

    def next_epoch(self) -> int:
        """The number of the next epoch: under powertrain a continued run
        starts at POWERTRAIN_START_EPOCH, every other run at 1."""
        if self.epoch is None:
            self.epoch = start_epoch() - 1
        return self.epoch + 1

    # -- connection -------------------------------------------------------

    def conn(self) -> Optional[socket.socket]:
        """The connection, made on first use; None outside powertrain, after
        the connection ended, and in a forked child of the connected process."""
        if self.gone or not self.rank.speaker:
            return None  # the other ranks of a node leave the talking to its local rank 0
        if self.sock is not None:
            return self.sock if self.owner_pid == os.getpid() else None
        path = self._target()[0]
        if not path:
            return None
        protocol = os.environ.get("POWERTRAIN_PROTOCOL", str(PROTOCOL))
        if protocol != str(PROTOCOL):
            raise RuntimeError(
                f"powertrain speaks protocol {protocol}, this package protocol {PROTOCOL}: update the package")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise RuntimeError(f"cannot connect to powertrain at POWERTRAIN_SOCKET={path}: {e.strerror}") from None
        self.sock = sock
        self.owner_pid = os.getpid()
        self._start_watcher(sock)
        self._send(sock, {"event": "hello", "protocol": PROTOCOL, "pid": os.getpid(), "framework": _framework()})
        return sock

    def _start_watcher(self, sock: socket.socket) -> None:
        rdhup = getattr(select, "POLLRDHUP", 0)
        if not rdhup:
            return
        wake_r, wake_w = os.pipe()
        self.wake_fds = (wake_r, wake_w)

        def watch() -> None:
            poller = select.poll()
            poller.register(sock.fileno(), rdhup)
            poller.register(wake_r, select.POLLIN)
            while True:
                for fd, _ in poller.poll():  # retried by Python on EINTR
                    if fd == wake_r:
                        return
                    self.lost("powertrain closed the connection")
                    return

        self.watcher = threading.Thread(target=watch, name="powertrain-watch", daemon=True)
        self.watcher.start()

    def lost(self, why: str) -> None:
        """The connection ended: unless the run was over, stop this process
        with SIGTERM (as powertrain itself would). Called from any thread, once."""
        # Held until the signal is sent: a second caller (the watcher, or the
        # thread that was reading) must not go on, or even exit, before it is.
        # Reentrant: a SIGTERM handler may run inside os.kill on this thread.
        with self.gone_lock:
            if self.gone:
                return
            self.gone = True
            if self.finished:
                return
            if self._target()[1] and not self.rank.leader:
                # Only this node's meter is gone: the program runs on (rank 0's
                # powertrain decides), and this node's windows end partial.
                sys.stderr.write(f"powertrain: this node's meter is gone ({why}); its ranks go on, following rank 0\n")
                sys.stderr.flush()
                return
            sys.stderr.write(f"powertrain: {why}; stopping this program (SIGTERM)\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGTERM)

    def close(self) -> None:
        """Stops the watcher and closes the connection (for tests). In a forked
        child only its copies of the descriptors are closed: waking the watcher
        through the shared pipe would stop the parent's."""
        if self.wake_fds is not None:
            if self.owner_pid == os.getpid():
                os.write(self.wake_fds[1], b"x")
                if self.watcher is not None:
                    self.watcher.join()
            for fd in self.wake_fds:
                os.close(fd)
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.wake_fds = None
        self.watcher = None

    # -- lines ------------------------------------------------------------

    def _send(self, sock: socket.socket, event: Dict[str, Any]) -> bool:
        line = (json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n").encode()
        if len(line) > MAX_LINE_BYTES:
            raise ValueError(f"powertrain event {event.get('event')!r} is longer than {MAX_LINE_BYTES} bytes")
        try:
            # MSG_NOSIGNAL: a closed peer gives EPIPE, not SIGPIPE.
            sock.sendall(line, getattr(socket, "MSG_NOSIGNAL", 0))
        except OSError as e:
            self.lost(f"the connection to powertrain broke ({e.strerror or e})")
            return False
        return True

    def send(self, event: Dict[str, Any]) -> bool:
        """Sends one event; False when there is no connection (outside powertrain)."""
        sock = self.conn()
        return sock is not None and self._send(sock, event)

    def read_line(self, sock: socket.socket, what: str) -> Optional[bytes]:
        """One line from powertrain, or None when the connection ended."""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while b"\n" not in self.buffer:
            if len(self.buffer) >= MAX_LINE_BYTES:
                raise ProtocolError(f"powertrain's answer to {what} is longer than {MAX_LINE_BYTES} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"powertrain did not answer {what} within {REPLY_TIMEOUT_S:g} s")
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(MAX_LINE_BYTES)
            except socket.timeout:  # before OSError: it is one
                continue
            except OSError as e:
                self.lost(f"the connection to powertrain broke ({e.strerror or e})")
                return None
            finally:
                sock.settimeout(None)
            if not chunk:
                self.lost("powertrain closed the connection (end of file)")
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def under_powertrain(self) -> bool:
        """This process talks to powertrain: connected (or about to be), not a
        forked child, and its node's speaker (local rank 0) in a run of
        several processes."""
        if self.gone or not active() or not self.rank.speaker:
            return False
        if self.sock is None and not self._target()[0]:
            return False
        return self.sock is None or self.owner_pid == os.getpid()

    def _target(self) -> Tuple[Optional[str], bool]:
        """The socket this node's speaker talks to, and whether it is a meter
        of this node only (not the powertrain that runs the program). None: no
        meter on this node, whose ranks only follow rank 0. Looked at once
        (progress() asks at every step).

        A trial over several nodes (POWERTRAIN_NODE_SOCKETS, a folder every
        node sees): each node's meter left "socket-<node name>" there, with
        its socket's path, or empty on the node whose powertrain runs the
        program (POWERTRAIN_SOCKET). Otherwise POWERTRAIN_SOCKET, unless this
        is another node of a run started from one powertrain (srun over
        several nodes), where that socket does not exist."""
        if self.target is None:
            main = os.environ.get("POWERTRAIN_SOCKET") or None
            folder = os.environ.get("POWERTRAIN_NODE_SOCKETS")
            if main and folder:
                entry = _node_entry(folder)
                self.target = (None, False) if entry is None else (main, False) if entry == "" else (entry, True)
            elif main and not self.rank.leader and not os.path.exists(main):
                self.target = (None, False)
            else:
                self.target = (main, False)
        return self.target

    def agree(self, number: Optional[int], decision: Decision) -> Decision:
        """Global rank 0's decision, for every rank of a distributed run (the
        decision itself for a single process)."""
        if self.rank.world_size <= 1 or number is None:
            return decision
        socket_path = os.environ.get("POWERTRAIN_SOCKET")
        folder = os.path.dirname(socket_path) if socket_path else None
        if folder is None and _ranks._torch_group() is None:
            return decision  # outside powertrain without torch.distributed: nothing to agree on
        channel = _ranks.Channel(self.rank, folder, REPLY_TIMEOUT_S)
        shared = channel.share(number, {"stop": decision.stop, "best": decision.best, "reason": decision.reason})
        return Decision(stop=bool(shared["stop"]), best=bool(shared["best"]), reason=str(shared.get("reason", "")))


def _node_entry(folder: str) -> Optional[str]:
    """This node's entry in a trial's nodes folder (see _Session._target):
    the text of socket-<node name>, None when there is none. The node's name
    is SLURMD_NODENAME, else the host name, as powertrain's meters name it."""
    name = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    if not name or len(name) > 100 or name.startswith(".") or any(c == "/" or ord(c) < 0x20 or c == "\x7f" for c in name):
        return None
    path = os.path.join(folder, "socket-" + name)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace").strip()
    finally:
        os.close(fd)


_session = _Session()


def start_epoch() -> int:
    """The first epoch of this run: POWERTRAIN_START_EPOCH under powertrain
    (a continued segment of a search), else 1."""
    value = config().start_epoch
    if value is None:
        return 1
    if value < 1:
        raise ValueError(f"POWERTRAIN_START_EPOCH={value} is not a positive epoch number")
    return value


def _reset() -> None:
    """Forgets the connection and every epoch (for tests)."""
    global _session
    with _session.lock:
        _session.close()
    _session = _Session()


def _parse_reply(line: bytes, epoch: int) -> Decision:
    shown = line[:200].decode("utf-8", "replace")
    try:
        reply = json.loads(line)
    except ValueError:
        raise ProtocolError(f"powertrain sent a malformed reply to epoch {epoch}: {shown!r}") from None
    if not isinstance(reply, dict) or reply.get("reply") != "epoch_end":
        raise ProtocolError(f"powertrain sent a malformed reply to epoch {epoch}: {shown!r}")
    number = reply.get("epoch")
    if not isinstance(number, int) or isinstance(number, bool) or number != epoch:
        raise ProtocolError(f"powertrain answered epoch {number!r} instead of epoch {epoch}")
    action = reply.get("action")
    if action not in ("continue", "stop"):
        raise ProtocolError(f"powertrain's reply to epoch {epoch} has an unknown action {action!r}")
    best = reply.get("best")
    if not isinstance(best, bool):
        raise ProtocolError(f"powertrain's reply to epoch {epoch} has no boolean 'best': {shown!r}")
    reason = reply.get("reason", "")
    return Decision(stop=action == "stop", best=best, reason=reason if isinstance(reason, str) else str(reason))


# -- public API --------------------------------------------------------------


@contextlib.contextmanager
def epoch() -> Iterator[int]:
    """Runs one epoch: ``with powertrain.epoch() as n: ...``. Sends epoch_start
    with the next number (from 1, or in a continued run from its start epoch,
    POWERTRAIN_START_EPOCH), which opens the epoch's measurement window in its
    train phase; report() inside or right after the block closes it.
    Under powertrain, starting an epoch before the previous one was reported
    raises RuntimeError."""
    s = _session
    boundary_ns = time.monotonic_ns()
    with s.lock:
        if s.open_epoch is not None and s.under_powertrain():
            raise RuntimeError(
                f"epoch {s.open_epoch} was not reported: call powertrain.report(val_metric) before the next epoch")
        number = s.next_epoch()
        s.epoch = number
        s.open_epoch = number
        s.phase = "train"
        s.send({"event": "epoch_start", "epoch": number, "mono_ns": boundary_ns})
    yield number


def _switch_phase(name: str, epoch_number: Optional[int]) -> None:
    s = _session
    boundary_ns = time.monotonic_ns()
    with s.lock:
        # Only inside the epoch it was meant for, and only real switches.
        if s.open_epoch is None or s.open_epoch != epoch_number or s.phase == name:
            return
        s.phase = name
        s.send({"event": "phase", "phase": name, "mono_ns": boundary_ns})


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Switches the open epoch's phase for the block, e.g.
    ``with powertrain.phase("eval"): validate()``; the previous phase is
    restored after it. Outside an unreported epoch nothing is sent."""
    if name not in _PHASES:
        raise ValueError(f"phase must be 'train' or 'eval', not {name!r}")
    s = _session
    with s.lock:
        number, previous = s.open_epoch, s.phase
    _switch_phase(name, number)
    try:
        yield
    finally:
        if previous is not None and previous != name:
            _switch_phase(previous, number)


def progress(step: int, steps: int, loss: Any = None) -> None:
    """Reports training progress for powertrain's live display and its
    divergence check: step `step` of `steps` in this epoch, with its loss.
    Sent at most every PROGRESS_INTERVAL_S seconds (and at the last step),
    in the train phase only; the loss (a float or a one-element tensor) is
    converted only when an event is sent, so calling this every step costs
    no device synchronization."""
    s = _session
    if not s.under_powertrain():
        return
    with s.lock:
        if s.open_epoch is None or s.phase != "train":
            return
        now = time.monotonic()
        if now - s.last_progress < PROGRESS_INTERVAL_S and step != steps:
            return
        s.last_progress = now
        s.send({"event": "progress", "step": int(step), "steps": int(steps), "loss": _number(loss)})


def report(val_metric: float, val_loss: Optional[float] = None, train_loss: Optional[float] = None,
           samples: Optional[int] = None, task_metrics: Optional[Sequence[float]] = None) -> Decision:
    """Ends the epoch with its validation metric (higher is better) and waits
    for powertrain's decision. Outside powertrain the decision is computed
    here: never stop, best when the metric is strictly higher than every
    earlier one. Raises ProtocolError for a reply it cannot read, and
    RuntimeError when no reply comes within REPLY_TIMEOUT_S. When powertrain
    is gone the process is sent SIGTERM; should the program survive it, the
    decision is to stop."""
    s = _session
    boundary_ns = time.monotonic_ns()
    metric = _scalar(val_metric)
    with s.lock:
        local_best = not math.isnan(metric) and (s.best_metric is None or metric > s.best_metric)
        if local_best:
            s.best_metric = metric
        number = s.open_epoch
        s.open_epoch = None
        if not s.under_powertrain():
            gone = s.gone
            decision = Decision(stop=gone, best=local_best and not gone, reason="powertrain is gone" if gone else "")
            decision = s.agree(number, decision)
            s.last = decision
            _after_report(s, number, metric, decision)
            return decision
        if number is None:
            raise RuntimeError("powertrain.report() outside an epoch: call it once per `with powertrain.epoch():`")
        event: Dict[str, Any] = {
            "event": "epoch_end", "epoch": number, "val_metric": _number(metric),
            "val_loss": _number(val_loss), "train_loss": _number(train_loss),
            "samples": None if samples is None else int(samples), "mono_ns": boundary_ns,
        }
        if task_metrics is not None:
            event["val_task_metrics"] = _numbers(task_metrics)
        sock = s.conn()
        line = None
        if sock is not None and s._send(sock, event):
            line = s.read_line(sock, f"epoch {number}")
        if line is None:  # the connection ended (and SIGTERM was sent)
            decision = Decision(stop=True, best=False, reason="powertrain is gone")
        else:
            decision = _parse_reply(line, number)
        decision = s.agree(number, decision)
        s.last = decision
        _after_report(s, number, metric, decision)
        return decision


def _after_report(s: _Session, number: Optional[int], metric: float, decision: Decision) -> None:
    for hook in list(s.report_hooks):
        hook(number, metric, decision)


def should_stop() -> bool:
    """The last decision's stop (False before the first report)."""
    last = _session.last
    return bool(last and last.stop)


def test(metric: float, task_metrics: Optional[Sequence[float]] = None) -> None:
    """Reports the test metric of the final (best) model. Required under
    powertrain before the program exits, or the trial fails."""
    s = _session
    with s.lock:
        event: Dict[str, Any] = {"event": "test", "metric": _number(metric)}
        if task_metrics is not None:
            event["task_metrics"] = _numbers(task_metrics)
        s.finished = True  # before sending: powertrain may hang up as soon as it has the line
        s.send(event)


# Not collected as a test when a test module imports it.
test.__test__ = False  # type: ignore[attr-defined]


def checkpoint(path: "os.PathLike[str] | str", kind: str = "model") -> None:
    """Tells powertrain where the program saved its model ("model") or its
    encoder ("encoder"). Informational."""
    if kind not in _CHECKPOINT_KINDS:
        raise ValueError(f"checkpoint kind must be 'model' or 'encoder', not {kind!r}")
    s = _session
    with s.lock:
        s.send({"event": "checkpoint", "path": _path_text(path), "kind": kind})


def _path_text(path: "os.PathLike[str] | os.PathLike[bytes] | str | bytes") -> str:
    """An absolute path as text powertrain reads (valid UTF-8): bytes of a
    file name that are not UTF-8 become U+FFFD. The event is informational,
    so an odd name must not end the run."""
    return os.fsencode(os.path.abspath(os.fspath(path))).decode("utf-8", "replace")


def epochs(max_epochs: Optional[int] = None) -> Iterator[int]:
    """Epoch numbers, each iteration running inside epoch(): from 1, or in a
    continued run from its start epoch (POWERTRAIN_START_EPOCH, or the epoch
    after those of the state powertrain.resume() loaded). Ends when powertrain
    says stop or after epoch max_epochs, the number of the last epoch
    (default: the trial's max_epochs; without either, outside powertrain, it
    never ends)::

        for n in powertrain.epochs(10):
            train_one_epoch()
            with powertrain.phase("eval"):
                metric = evaluate()
            if powertrain.report(metric).best:
                save()
    """
    limit = max_epochs if max_epochs is not None else config().max_epochs
    s = _session
    while not should_stop():
        with s.lock:
            upcoming = s.next_epoch()
        if limit is not None and upcoming > limit:
            return
        with epoch() as number:
            yield number
