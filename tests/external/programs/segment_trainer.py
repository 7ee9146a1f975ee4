#!/usr/bin/env python3
"""A training program that can be paused and continued (docs/external.md,
"Continuing a paused run"), for the external-workload tests: raw protocol, no
torch. Its "model" is the list of epochs it trained; its state file holds it.
Arguments: {start_epoch} {resume_from} {save_state}, which must agree with the
POWERTRAIN_* variables (exit 7 otherwise). Epoch e reports FAKE_METRICS[e-1], or
with FAKE_CURVE_FROM_LR set, 1 - 0.9 exp(-20 lr e) for the run's learning rate.
FAKE_NO_STATE=1: a program that never saves its state. FAKE_CRASH_LR=x: a run
at learning rate x exits 3 after its first epoch."""
import json
import os
import socket
import sys
import time

metrics = [float(x) for x in os.environ.get("FAKE_METRICS", "0.5,0.6,0.7,0.8,0.9,0.95").split(",")]
if os.environ.get("FAKE_CURVE_FROM_LR"):  # a search's setups: the higher the rate, the faster it learns
    import math
    lr = float(os.environ["POWERTRAIN_LEARNING_RATE"])
    metrics = [1.0 - 0.9 * math.exp(-20.0 * lr * e) for e in range(1, 101)]
start_arg, resume_arg, save_arg = sys.argv[1:4]
start = int(os.environ.get("POWERTRAIN_START_EPOCH", "1"))
resume_from = os.environ.get("POWERTRAIN_RESUME_FROM", "")
save_state = os.environ.get("POWERTRAIN_SAVE_STATE", "")
if (int(start_arg), resume_arg, save_arg) != (start, resume_from, save_state):
    print(f"placeholders {sys.argv[1:4]} disagree with the environment {start}, {resume_from!r}, {save_state!r}",
          file=sys.stderr)
    sys.exit(7)

trained = []  # the epochs whose training this "model" holds
if resume_from:
    with open(resume_from) as f:
        trained = json.load(f)["trained"]
    if len(trained) != start - 1:
        print(f"the state holds {len(trained)} epochs, but the run starts at epoch {start}", file=sys.stderr)
        sys.exit(8)

sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["POWERTRAIN_SOCKET"])
reader = sock.makefile("r", encoding="utf-8")


def send(obj):
    sock.sendall((json.dumps(obj) + "\n").encode())


max_epochs = int(os.environ["POWERTRAIN_MAX_EPOCHS"])
epoch = start - 1
while True:
    epoch += 1
    send({"event": "epoch_start", "epoch": epoch})
    time.sleep(0.01)
    trained.append(epoch)
    send({"event": "epoch_end", "epoch": epoch, "val_metric": metrics[epoch - 1], "train_loss": 1.0})
    reply = json.loads(reader.readline())
    if reply["action"] == "stop":
        break

if os.environ.get("FAKE_CRASH_LR") and float(os.environ["FAKE_CRASH_LR"]) == float(os.environ["POWERTRAIN_LEARNING_RATE"]):
    print("crashed on purpose (FAKE_CRASH_LR)", file=sys.stderr)
    sys.exit(3)
# Paused at the segment's limit: the state for the next segment, whole or not at all.
if epoch == max_epochs and save_state and not os.environ.get("FAKE_NO_STATE"):
    with open(save_state + ".tmp", "w") as f:
        json.dump({"trained": trained}, f)
    os.replace(save_state + ".tmp", save_state)
send({"event": "test", "metric": 0.5})
send({"event": "end"})
