#!/usr/bin/env python3
"""A training program that speaks powertrain's protocol with raw sockets (no
package, no torch), scripted by its first argument, for the external-workload
tests. It trains nothing: each epoch sleeps FAKE_EPOCH_S seconds and reports
the next value of FAKE_METRICS."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "normal"
metrics = [float(x) for x in os.environ.get("FAKE_METRICS", "0.5,0.6,0.7,0.7,0.7,0.7,0.7,0.7").split(",")]
epoch_s = float(os.environ.get("FAKE_EPOCH_S", "0.02"))

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["POWERTRAIN_SOCKET"])
reader = sock.makefile("r", encoding="utf-8")


def send(obj):
    obj.setdefault("mono_ns", time.monotonic_ns())
    sock.sendall((json.dumps(obj) + "\n").encode())


def epoch_end(epoch, metric, **extra):
    send({"event": "epoch_end", "epoch": epoch, "val_metric": metric, "val_loss": 1.0 - metric,
          "train_loss": 1.0, "samples": 1000, **extra})
    line = reader.readline()
    if not line:
        sys.exit(5)
    return json.loads(line)


send({"event": "hello", "protocol": 1, "pid": os.getpid(), "framework": "fake 1.0"})
if os.environ.get("POWERTRAIN_INIT_ENCODER") and not os.path.exists(os.environ["POWERTRAIN_INIT_ENCODER"]):
    print("the encoder to start from is missing", file=sys.stderr)
    sys.exit(4)
if os.environ.get("FAKE_PID_FILE") and mode != "orphan":
    # A grandchild in the program's process group, as a DataLoader worker is.
    grandchild = subprocess.Popen(["sleep", "1000"])
    with open(os.environ["FAKE_PID_FILE"], "a") as f:
        f.write(f"{os.getpid()} {grandchild.pid}\n")
if mode == "no_epoch":
    sys.exit(0)
if mode == "malformed":
    sock.sendall(b"this is not json\n")
    time.sleep(30)
if mode == "out_of_order":
    send({"event": "epoch_start", "epoch": 2})
    time.sleep(30)
if mode == "bad_protocol":
    send({"event": "hello", "protocol": 2})
    time.sleep(30)

stop = False
epoch = 0
while not stop:
    epoch += 1
    send({"event": "epoch_start", "epoch": epoch})
    if mode == "diverge":
        send({"event": "progress", "step": 1, "steps": 10, "loss": 2.0})
        send({"event": "progress", "step": 2, "steps": 10, "loss": "nan"})
        time.sleep(30)
    time.sleep(epoch_s)
    send({"event": "phase", "phase": "eval"})
    time.sleep(epoch_s / 2)
    if mode == "crash" and epoch == 2:
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: out of memory in the fake trainer", file=sys.stderr)
        sys.exit(3)
    if mode == "exit_in_epoch" and epoch == 2:
        sys.exit(0)
    if mode == "hang" and epoch == 2:
        time.sleep(3600)
    if mode == "orphan" and epoch == 2:
        # A grandchild in the program's process group, as a DataLoader worker is.
        child = subprocess.Popen(["sleep", "1000"])
        with open(os.environ["FAKE_PID_FILE"], "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        time.sleep(3600)
    reply = epoch_end(epoch, metrics[min(epoch - 1, len(metrics) - 1)])
    assert reply["reply"] == "epoch_end" and reply["epoch"] == epoch, reply
    if reply["best"] and os.environ.get("POWERTRAIN_ENCODER_CHECKPOINT"):
        with open(os.environ["POWERTRAIN_ENCODER_CHECKPOINT"], "w") as f:
            f.write(f"encoder of epoch {epoch}\n")
        send({"event": "checkpoint", "path": os.environ["POWERTRAIN_ENCODER_CHECKPOINT"], "kind": "encoder"})
    stop = reply["action"] == "stop"
    if mode == "own_limit" and epoch == 2:
        break

if mode == "no_test":
    sys.exit(0)
if mode == "ignore_stop":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)
if mode == "slow_exit":
    time.sleep(3600)  # never sends its test metric; SIGTERM ends it
send({"event": "test", "metric": 0.66})
send({"event": "end"})
print("fake trainer done", flush=True)
