"""When powertrain dies, the program gets SIGTERM. Each case runs the client in
a child process against the fake powertrain of this test process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import powertrain
from conftest import CLOSE

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(powertrain.__file__)))


def run_child(fake, code: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTRAIN_")}
    env["POWERTRAIN_SOCKET"] = fake.path
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_end_of_file_while_waiting_for_a_reply_sends_sigterm(fake):
    fake.responder = lambda e: CLOSE
    child = run_child(fake, """
        import powertrain as pt
        with pt.epoch():
            pt.report(0.5)
        print("survived")
    """)
    assert child.returncode == -signal.SIGTERM, child.stderr
    assert "survived" not in child.stdout
    assert "powertrain closed the connection" in child.stderr


def test_hang_up_during_a_long_epoch_sends_sigterm(fake):
    fake.hang_up_after = "epoch_start"
    started = time.monotonic()
    child = run_child(fake, """
        import time
        import powertrain as pt
        with pt.epoch():
            time.sleep(15)  # busy training: no send, no receive
        print("survived")
    """)
    assert child.returncode == -signal.SIGTERM, child.stderr
    assert time.monotonic() - started < 10


def test_a_program_that_handles_sigterm_gets_a_stop_decision(fake):
    fake.responder = lambda e: CLOSE
    child = run_child(fake, """
        import signal
        import powertrain as pt
        got = []
        signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        with pt.epoch():
            d = pt.report(0.5)
        pt.progress(1, 2, 0.1)
        pt.test(0.5)
        print(got == [signal.SIGTERM], d.stop, d.best, d.reason, pt.should_stop())
    """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.split("\n")[0] == "True True False powertrain is gone True"


def test_hang_up_after_the_test_event_is_expected(fake):
    fake.hang_up_after = "test"
    child = run_child(fake, """
        import time
        import powertrain as pt
        with pt.epoch():
            pt.report(0.5)
        pt.test(0.5)
        time.sleep(0.5)  # the watcher sees the hang-up in this time
        print("done")
    """)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "done"
