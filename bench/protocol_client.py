"""The program side of bench_protocol: epochs with no work in them, reported
either with raw socket writes or through the powertrain package, so that the
delay of powertrain's window boundaries and the cost of an epoch's report are
all that is left. Writes the program's round-trip times (epoch_end sent to
reply read), in microseconds, one per line, to $BENCH_OUT."""
import json
import os
import socket
import sys
import time

client = sys.argv[1]
epochs = int(sys.argv[2])
round_trips = []

if client == "raw":
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["POWERTRAIN_SOCKET"])
    reader = sock.makefile("r")

    def send(obj):
        obj["mono_ns"] = time.monotonic_ns()
        sock.sendall((json.dumps(obj) + "\n").encode())

    for e in range(1, epochs + 1):
        send({"event": "epoch_start", "epoch": e})
        send({"event": "phase", "phase": "eval"})
        t0 = time.perf_counter_ns()
        send({"event": "epoch_end", "epoch": e, "val_metric": e / (epochs + 1)})
        reply = json.loads(reader.readline())
        round_trips.append((time.perf_counter_ns() - t0) / 1e3)
        if reply["action"] == "stop":
            break
    send({"event": "test", "metric": 0.5})
else:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import powertrain as pt

    for e in range(1, epochs + 1):
        with pt.epoch():
            with pt.phase("eval"):
                pass
            t0 = time.perf_counter_ns()
            d = pt.report(e / (epochs + 1))
            round_trips.append((time.perf_counter_ns() - t0) / 1e3)
        if d.stop:
            break
    pt.test(0.5)

with open(os.environ["BENCH_OUT"], "w") as f:
    f.write("\n".join(f"{x:.1f}" for x in round_trips) + "\n")
