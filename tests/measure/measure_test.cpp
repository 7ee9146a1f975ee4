// measure::run, the engine of `powertrain measure`, against a fake meter (a
// counter that grows at 50 W): what it measures, when the command starts,
// what it refuses before starting anything, and the nodes of a command over
// several nodes.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "clock_meter.h"
#include "powertrain/error.h"
#include "powertrain/measure/measure.h"
#include "scoped_env.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using powertrain::ConfigError;
using powertrain::testing::read_file;
using powertrain::testing::ScopedEnv;
using powertrain::testing::TempDir;
namespace energy = powertrain::energy;
namespace measure = powertrain::measure;

// Hooks with one 50 W counter for meters (called `*probes` times) and no
// environment (no Slurm).
measure::Hooks fake_hooks(int* probes = nullptr, std::chrono::milliseconds opening = {}) {
  measure::Hooks h;
  h.probe = [probes, opening](const energy::ProbeOptions&) {
    if (probes) ++*probes;
    std::this_thread::sleep_for(opening);
    energy::Probe p;
    energy::SourceStatus s;
    s.source = "clock";
    s.available = true;
    p.statuses.push_back(s);
    p.meters.push_back(std::make_unique<powertrain::testing::ClockMeter>(50.0));
    return p;
  };
  h.env = [](const std::string&) { return std::optional<std::string>(); };
  return h;
}

measure::Options command(std::vector<std::string> argv) {
  measure::Options o;
  o.command = std::move(argv);
  o.interval_ms = 10;
  return o;
}

TEST(Measure, TheCommandsEnergyIsWhatTheMetersCountedWhileItRan) {
  const auto r = measure::run(command({"sleep", "0.3"}), fake_hooks());
  const auto& m = r.measurement;
  EXPECT_EQ(m.exit_code, 0);
  EXPECT_FALSE(r.secondary);
  EXPECT_GE(m.window.duration_s, 0.3);
  EXPECT_LT(m.window.duration_s, 2.0);
  // 50 W over its duration, from the counter read at the window's ends; the
  // command's own share of it is no more than that.
  EXPECT_NEAR(m.machine_energy_j, 50.0 * m.window.duration_s, 0.5);
  EXPECT_LE(m.energy_j, m.machine_energy_j + 1e-9);
  EXPECT_GT(m.energy_j, 0.0);
  EXPECT_EQ(m.command, (std::vector<std::string>{"sleep", "0.3"}));
  EXPECT_FALSE(r.timeline.empty());
  ASSERT_EQ(r.channels.size(), 1u);
  EXPECT_EQ(r.channels[0].source, "clock");
}

TEST(Measure, TheCommandStartsOnlyOnceTheMetersRun) {
  TempDir dir;
  const auto started = dir / "started";
  const auto before = std::chrono::system_clock::now();
  // The meters take 300 ms to open; the command writes when it starts.
  const auto r = measure::run(command({"/bin/sh", "-c", "date +%s.%N > " + started.string()}),
                              fake_hooks(nullptr, std::chrono::milliseconds(300)));
  EXPECT_EQ(r.measurement.exit_code, 0);
  const double start_s = std::stod(read_file(started));
  const double before_s = std::chrono::duration<double>(before.time_since_epoch()).count();
  EXPECT_GE(start_s - before_s, 0.3) << "the command ran before its meters were open";
}

TEST(Measure, ExitCodesAndSignalsAreTheCommandsOwn) {
  EXPECT_EQ(measure::run(command({"/bin/sh", "-c", "exit 3"}), fake_hooks()).measurement.exit_code, 3);
  EXPECT_EQ(measure::run(command({"/bin/sh", "-c", "kill -9 $$"}), fake_hooks()).measurement.exit_code, 137);
}

TEST(Measure, TheCommandIsToldTheEpochProtocolsSocket) {
  TempDir dir;
  const auto env = dir / "env";
  const auto r = measure::run(command({"/bin/sh", "-c", "echo $POWERTRAIN_PROTOCOL $POWERTRAIN_SOCKET > " + env.string()}),
                              fake_hooks());
  EXPECT_EQ(r.measurement.exit_code, 0);
  EXPECT_EQ(read_file(env).rfind("1 /", 0), 0u) << read_file(env);
}

TEST(Measure, WhatTheCommandLeftRunningIsNoted) {
  const auto r = measure::run(command({"/bin/sh", "-c", "sleep 0.5 & exit 0"}), fake_hooks());
  std::string notes;
  for (const auto& n : r.measurement.window.notes) notes += n + "\n";
  EXPECT_NE(notes.find("1 process the command started was still running"), std::string::npos) << notes;
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
}

// The unified (v2) line of /proc/<pid>/cgroup ("/powertrain-42"), from the file's text.
std::string v2_line(const std::string& text) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

std::string python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

// The command writes its cgroup, then starts a grandchild in a new session
// (a double fork) that burns 0.3 CPU-seconds, writes its pid and sleeps on.
const char* kCommand = R"(import os, sys, time
with open(sys.argv[1], "w") as f:
    f.write(open("/proc/self/cgroup").read())
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        os.write(w, str(os.getpid()).encode())
        time.sleep(30)
        os._exit(0)
    os._exit(0)
os.close(w)
with open(sys.argv[2], "w") as f:
    f.write(os.read(r, 64).decode())
)";

// The command is the run: it starts inside the run's cgroup, powertrain-<pid>,
// which powertrain does not enter (no migration of powertrain, issue 27), and
// what it starts in a new session is in it too and counted.
TEST(Measure, TheCommandRunsInsideTheRunsCgroupAndPowertrainOutside) {
  TempDir dir;
  std::ofstream(dir / "command.py") << kCommand;
  const auto seen = dir / "cgroup", grandchild_file = dir / "grandchild";
  const auto r = measure::run(
      command({python(), (dir / "command.py").string(), seen.string(), grandchild_file.string()}), fake_hooks());
  const auto& m = r.measurement;
  ASSERT_EQ(m.exit_code, 0);
  const pid_t grandchild = std::stoi(read_file(grandchild_file));
  struct Reap {  // measure leaves what the command left running, as a shell would
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{grandchild};
  if (m.attribution.find("no cgroup") != std::string::npos)
    GTEST_SKIP() << "no cgroup can be made here: " << m.attribution;
  const std::string name = "/powertrain-" + std::to_string(::getpid());
  // Only a refusal said in the attribution (the kernel's, a cgroup v1, or an
  // earlier test of this process that forced it) lets powertrain in.
  if (m.attribution.find("(powertrain moved into it: ") != std::string::npos)
    GTEST_SKIP() << "the command could not be started inside the cgroup here: " << m.attribution;
  EXPECT_NE(m.attribution.find("CPU time from the cgroup powertrain-" + std::to_string(::getpid()) +
                               " the command was started in (powertrain outside it)"),
            std::string::npos)
      << m.attribution;
  EXPECT_EQ(v2_line(read_file(seen)), name) << read_file(seen);
  EXPECT_NE(v2_line(read_file("/proc/self/cgroup")), name) << "powertrain moved into the cgroup";
  EXPECT_EQ(v2_line(read_file("/proc/" + std::to_string(grandchild) + "/cgroup")), name);
  ASSERT_TRUE(m.window.cpu.has_value());
  EXPECT_GE(m.window.cpu->measured_s, 0.25) << "the grandchild's 0.3 CPU-seconds";
}

// Where the kernel refuses to start the command inside the cgroup (forced),
// powertrain moves into it and forks, as before, and the attribution says so.
TEST(Measure, WhereClone3IsRefusedPowertrainMovesIntoTheCgroupAndSaysSo) {
  ScopedEnv off("POWERTRAIN_NO_CLONE3", "1");
  TempDir dir;
  const auto seen = dir / "cgroup";
  const auto r = measure::run(command({"/bin/sh", "-c", "cat /proc/self/cgroup > " + seen.string()}), fake_hooks());
  const auto& m = r.measurement;
  ASSERT_EQ(m.exit_code, 0);
  if (m.attribution.find("no cgroup") != std::string::npos)
    GTEST_SKIP() << "no cgroup can be made here: " << m.attribution;
  if (m.attribution.find("cgroup v1") != std::string::npos) GTEST_SKIP() << "a cgroup v1 machine: " << m.attribution;
  const std::string name = "powertrain-" + std::to_string(::getpid());
  EXPECT_NE(m.attribution.find("CPU time from powertrain's own cgroup " + name +
                               " (powertrain moved into it: POWERTRAIN_NO_CLONE3 is set)"),
            std::string::npos)
      << m.attribution;
  EXPECT_EQ(v2_line(read_file(seen)), "/" + name) << read_file(seen);
  EXPECT_EQ(v2_line(read_file("/proc/self/cgroup")), "/" + name);
}

TEST(Measure, BadSettingsAndCommandsAreRefusedBeforeAnythingStarts) {
  int probes = 0;
  const auto refused = [&](measure::Options o, const std::string& message) {
    EXPECT_THROW(measure::validate(o), ConfigError) << message;
    try {
      (void)measure::run(o, fake_hooks(&probes));
      ADD_FAILURE() << "ran: " << message;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  auto o = command({"true"});
  o.idle_s = -1;
  refused(o, "--idle must be between 0 and 3600 seconds");
  o = command({"true"});
  o.scope = "galaxy";
  refused(o, "--estimate-scope must be 'system' or 'process'");
  o = command({"true"});
  o.cpu_idle_w = 5;
  o.cpu_full_w = 1;
  refused(o, "--cpu-full-w (1 W) must not be below --cpu-idle-w (5 W)");
  o = command({"true"});
  o.disable = {"nvlm"};
  refused(o, "no energy source named 'nvlm'");
  o = command({"true"});
  o.gpus = "0,x";
  refused(o, "--gpus expects GPU indices");
  EXPECT_EQ(probes, 0);
  // Good settings pass validate(); the command itself is checked by run().
  EXPECT_NO_THROW(measure::validate(command({})));
  EXPECT_THROW((void)measure::run(command({}), fake_hooks(&probes)), ConfigError);
  EXPECT_THROW((void)measure::run(command({"no-such-program-here"}), fake_hooks(&probes)), ConfigError);
  EXPECT_EQ(probes, 0);
}

TEST(Measure, NodeZeroReportsEveryNodeOfACommandOverSeveral) {
  TempDir dir;
  auto node1 = command({"sleep", "0.1"});
  node1.node_rank = 1;
  node1.nodes = 2;
  node1.nodes_dir = (dir / "nodes").string();
  const auto secondary = measure::run(node1, fake_hooks());
  EXPECT_TRUE(secondary.secondary);
  EXPECT_EQ(secondary.node_rank, 1);
  EXPECT_EQ(secondary.nodes, 2);

  auto node0 = node1;
  node0.node_rank = 0;
  node0.nodes_wait_s = 5;
  const auto primary = measure::run(node0, fake_hooks());
  EXPECT_FALSE(primary.secondary);
  ASSERT_TRUE(primary.measurement.nodes.has_value());
  const auto& n = *primary.measurement.nodes;
  ASSERT_EQ(n.per_node.size(), 2u);
  EXPECT_TRUE(n.per_node[1].reported);
  EXPECT_FALSE(n.partial);
  EXPECT_NEAR(n.per_node[1].energy_j, secondary.measurement.energy_j, 1e-6);
  EXPECT_NEAR(n.energy_j, primary.measurement.energy_j + secondary.measurement.energy_j, 1e-3);
}

TEST(Measure, ANodesFolderGoesWithSeveralNodes) {
  auto o = command({"true"});
  o.nodes_dir = "/tmp/anywhere";
  EXPECT_THROW((void)measure::run(o, fake_hooks()), ConfigError);
  o = command({"true"});
  o.node_rank = 0;
  o.nodes = 2;
  EXPECT_THROW((void)measure::run(o, fake_hooks()), ConfigError);  // no --nodes-dir outside Slurm
}

}  // namespace
