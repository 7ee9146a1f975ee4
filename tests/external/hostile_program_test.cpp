// Issue 24: programs that misuse the protocol on purpose or by mistake. Each
// is a small raw-socket script (no package); what they do is an error path,
// so a scripted program is the right witness. The run must end in time with
// one clear reason, whatever the program does.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <limits>
#include <thread>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/external/workload.h"
#include "powertrain/io/text.h"
#include "temp_dir.h"

namespace px = powertrain::external;
namespace prun = powertrain::run;
using powertrain::testing::clock_tracker;
using powertrain::testing::TempDir;

namespace {

std::string python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

// The start of every script: connected, its pid written for the watchdog.
const std::string kPrelude = R"(import json, os, socket, sys, threading, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(os.environ["POWERTRAIN_SOCKET"])
with open(os.environ["PID_FILE"], "w") as f:
    f.write(str(os.getpid()))
def send(o):
    s.sendall((json.dumps(o) + "\n").encode())
)";

// Records as slowly as a store on a busy disk with forecasts would (a few ms an epoch).
class SlowObserver : public prun::RunObserver {
 public:
  explicit SlowObserver(double ms) : ms_(ms) {}
  void on_epoch(const prun::EpochRecord&) override {
    if (ms_ > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms_));
  }

 private:
  double ms_;
};

struct Result {
  prun::RunSummary summary;
  std::string error;
  double seconds = 0.0;
};

class Hostile : public ::testing::Test {
 protected:
  TempDir dir;
  prun::RunConfig config(const std::string& body, int max_epochs = 5) {
    const auto script = dir / "program.py";
    std::ofstream(script) << kPrelude << body;
    prun::RunConfig c;
    c.command.argv = {python(), script.string()};
    c.command.env = {{"PID_FILE", (dir / "pid").string()}};
    c.max_epochs = max_epochs;
    c.patience = 2;
    c.min_delta = 0.0;
    return c;
  }
  static px::CommandOptions options() {
    px::CommandOptions o;
    o.grace_s = 5.0;
    o.kill_after_s = 1.0;
    return o;
  }
  // Runs the workload on a thread; past `limit_s` the program is killed so
  // that a hang fails the test instead of holding it forever.
  Result run(const prun::RunConfig& c, const px::CommandOptions& o, double limit_s, double epoch_ms = 0.0) {
    auto task = std::async(std::launch::async, [&] {
      Result r;
      auto tracker = clock_tracker(20.0);
      SlowObserver obs(epoch_ms);
      px::CommandWorkload w(c, o);
      prun::RunControl control(c, *tracker, obs);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        w.run(control);
      } catch (const powertrain::WorkloadError& e) {
        r.error = e.what();
        control.fail(e.what());
      }
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.summary = control.finish();
      return r;
    });
    if (task.wait_for(std::chrono::duration<double>(limit_s)) != std::future_status::ready) {
      ADD_FAILURE() << "the run did not end within " << limit_s << " s";
      pid_t pid = 0;
      std::ifstream(dir / "pid") >> pid;
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    return task.get();
  }
};

}  // namespace

TEST_F(Hostile, AProgramThatNeverReadsItsRepliesEndsByItsTimeout) {
  // Before: about 279 unread replies filled the socket and powertrain waited
  // in a send without a deadline, forever.
  const auto c = config(R"(
e = 0
while True:
    e += 1
    send({"event": "epoch_start", "epoch": e})
    send({"event": "epoch_end", "epoch": e, "val_metric": e})
)", 100000);
  auto o = options();
  o.timeout_s = 3.0;
  const auto r = run(c, o, 30.0);
  EXPECT_TRUE(r.error.find("ran past its timeout") != std::string::npos ||
              r.error.find("does not read powertrain's replies") != std::string::npos)
      << r.error;
  EXPECT_LT(r.seconds, o.timeout_s + 3.0);
}

TEST_F(Hostile, TheTimeoutIsHeldBetweenTheEventsOfOneRead) {
  // Thousands of epochs in one burst: each is recorded and forecast, and a
  // 64 KiB read of them used to be handled whole before a deadline was looked at.
  const auto c = config(R"(
def drain():
    for _ in s.makefile("rb"):
        pass
threading.Thread(target=drain, daemon=True).start()
burst = "".join(json.dumps({"event": "epoch_start", "epoch": e}) + "\n" +
                json.dumps({"event": "epoch_end", "epoch": e, "val_metric": e}) + "\n" for e in range(1, 20001))
s.sendall(burst.encode())
time.sleep(3600)
)", 100000);
  auto o = options();
  o.timeout_s = 2.0;
  const auto r = run(c, o, 200.0, 10.0);
  EXPECT_NE(r.error.find("ran past its timeout of 2 s"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, o.timeout_s + 2.0);
}

TEST_F(Hostile, AProgramThatClosesItsConnectionAndGoesOnIsEnded) {
  const auto c = config(R"(
send({"event": "epoch_start", "epoch": 1})
s.close()
time.sleep(3600)
)");
  const auto r = run(c, options(), 30.0);
  EXPECT_NE(r.error.find("closed its connection to powertrain in epoch 1"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, 8.0);
}

TEST_F(Hostile, AGracePeriodBeyondTheClocksRangeMeansNoLimit) {
  const auto c = config(R"(
r = s.makefile("r")
for e in (1, 2):
    send({"event": "epoch_start", "epoch": e})
    send({"event": "epoch_end", "epoch": e, "val_metric": 0.1 * e})
    reply = json.loads(r.readline())
time.sleep(0.3)
send({"event": "test", "metric": 0.5})
)", 2);
  for (double grace : {1e10, std::numeric_limits<double>::infinity()}) {
    auto o = options();
    o.grace_s = grace;
    const auto r = run(c, o, 30.0);
    EXPECT_TRUE(r.error.empty()) << grace << ": " << r.error;
    EXPECT_EQ(r.summary.status, prun::RunStatus::max_epochs) << grace;
  }
}

TEST_F(Hostile, AProtocolErrorAfterTheStopReplyDoesNotWaitOutTheGracePeriod) {
  const auto c = config(R"(
r = s.makefile("r")
send({"event": "epoch_start", "epoch": 1})
send({"event": "epoch_end", "epoch": 1, "val_metric": 0.5})
r.readline()
s.sendall(b"this is not json\n")
time.sleep(3600)
)", 1);
  auto o = options();
  o.grace_s = 60.0;
  const auto r = run(c, o, 90.0);
  EXPECT_NE(r.error.find("malformed event"), std::string::npos) << r.error;
  EXPECT_LT(r.seconds, 10.0);
}

TEST_F(Hostile, ALineOverTheLimitIsRefusedHoweverItArrives) {
  const auto c = config(R"(
send({"event": "epoch_start", "epoch": 1})
line = json.dumps({"event": "progress", "step": 1, "steps": 2, "loss": 0.5, "pad": "x" * 100000})
s.sendall(line[:60000].encode())
time.sleep(0.5)
s.sendall((line[60000:] + "\n").encode())
time.sleep(3600)
)");
  auto o = options();
  o.idle_timeout_s = 5.0;
  const auto r = run(c, o, 30.0);
  EXPECT_NE(r.error.find("longer than 65536 bytes"), std::string::npos) << r.error;
}

TEST_F(Hostile, StderrInAnyEncodingWithNulsIsKeptAsTextAndItsLastLineShown) {
  const auto c = config(R"(
sys.stderr.buffer.write(b"first line\ncaf\xe9 boom\x00after\n")
sys.stderr.flush()
sys.exit(3)
)");
  const auto r = run(c, options(), 30.0);
  EXPECT_EQ(powertrain::io::valid_utf8(r.error), r.error);
  const auto first = r.error.substr(0, r.error.find('\n'));
  EXPECT_NE(first.find("exited with status 3"), std::string::npos) << r.error;
  // The first line (all a console shows) carries the last stderr line, NUL and what follows it included.
  EXPECT_NE(first.find("caf\xef\xbf\xbd boom\\x00after"), std::string::npos) << first;
  EXPECT_NE(r.error.find("first line"), std::string::npos) << r.error;
}
