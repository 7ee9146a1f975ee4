// Issue 24: nothing a program starts outlives its run, even what leaves the
// program's process group (setsid, a double fork with setsid, an empty
// environment): powertrain is their subreaper, and they carry its token.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "powertrain/external/process.h"
#include "temp_dir.h"

namespace px = powertrain::external;
using powertrain::testing::TempDir;

namespace {

std::string python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

// Starts three sleepers that leave its process group, writes their pids, exits.
const char* kEscaper = R"(import os, sys
pids = []
pid = os.fork()
if pid == 0:  # a new session of its own
    os.setsid()
    os.execvp("sleep", ["sleep", "1000"])
pids.append(pid)
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # the daemon's double fork: the grandchild is orphaned at once
    os.setsid()
    grandchild = os.fork()
    if grandchild == 0:
        os.execvp("sleep", ["sleep", "1000"])
    os.write(w, str(grandchild).encode())
    os._exit(0)
os.waitpid(pid, 0)
pids.append(int(os.read(r, 64)))
pid = os.fork()
if pid == 0:  # and one that drops its environment as well
    os.setsid()
    os.execve("/bin/sleep", ["sleep", "1000"], {})
pids.append(pid)
with open(sys.argv[1], "w") as f:
    f.write(" ".join(map(str, pids)))
)";

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

TEST(Containment, WhatLeavesTheProcessGroupDiesAndIsReapedWithTheRun) {
  TempDir dir;
  const auto script = dir / "escaper.py";
  std::ofstream(script) << kEscaper;
  const auto pid_file = dir / "pids";
  std::vector<pid_t> pids;
  {
    px::Child child({{python(), script.string(), pid_file.string()}, "", {}});
    for (int i = 0; i < 500 && !child.poll_exit(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(child.exited());
    std::ifstream in(pid_file);
    for (pid_t p; in >> p;) pids.push_back(p);
    ASSERT_EQ(pids.size(), 3u);
    for (pid_t p : pids) EXPECT_FALSE(gone(p)) << p << " should still run while the child object lives";
  }
  // The run is over: every one of them is dead, and none is left a zombie.
  for (pid_t p : pids) EXPECT_TRUE(gone(p)) << p;
}
