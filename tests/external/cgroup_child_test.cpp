// A child started inside a cgroup powertrain is not in (ChildSpec::cgroup,
// clone3 with CLONE_INTO_CGROUP), as `powertrain measure` starts its command:
// the program and what it starts are in the cgroup, this process is not, a
// contained child's end kills what is left there, and where the kernel
// refuses (forced here with POWERTRAIN_NO_CLONE3=1, or a folder that is no
// cgroup) the child is forked where powertrain is, after saying why.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "powertrain/energy/cgroup.h"
#include "powertrain/external/process.h"
#include "scoped_env.h"
#include "temp_dir.h"

namespace px = powertrain::external;
namespace energy = powertrain::energy;
using powertrain::testing::read_file;
using powertrain::testing::ScopedEnv;
using powertrain::testing::TempDir;

namespace {

std::string python() {
  const std::string p = POWERTRAIN_TEST_PYTHON;
  return p.empty() ? "python3" : p;
}

// The unified (v2) line of /proc/<pid>/cgroup: "/powertrain-42" or "/".
std::string v2_cgroup(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

// A cgroup v2 made for a command, powertrain not in it; null (and `why`) where this machine allows none.
std::unique_ptr<energy::RunCgroup> command_cgroup(std::string& why) {
  auto c = energy::RunCgroup::create(why, "/proc", "/sys", /*enter=*/false);
  if (c && c->version() != 2) {
    why = "the cgroup made here is a cgroup v1 one, which clone3 cannot start a process in";
    return nullptr;
  }
  return c;
}

bool gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

int wait_exit(px::Child& child) {
  for (int i = 0; i < 1000; ++i) {
    if (const auto st = child.poll_exit()) return WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

// A held foreground child, as measure starts its command: in the cgroup from
// its first instruction, before it is released; powertrain stays outside.
TEST(CgroupChild, TheProgramRunsInsideTheCgroupAndPowertrainDoesNot) {
  std::string why;
  auto cgroup = command_cgroup(why);
  if (!cgroup) GTEST_SKIP() << "no cgroup v2 can be made here: " << why;
  const std::string name = "/" + cgroup->dir().filename().string();
  TempDir dir;
  const auto seen = dir / "cgroup";
  px::ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", "cat /proc/self/cgroup > " + seen.string()};
  spec.contained = false;
  spec.held = true;
  spec.cgroup = cgroup->dir().string();
  std::string refused = "not called";
  spec.cgroup_refused = [&](const std::string& w) { refused = w; };
  px::Child child(spec);
  if (!child.in_cgroup()) GTEST_SKIP() << "the kernel refused clone3 into a cgroup here: " << refused;
  EXPECT_EQ(refused, "not called");
  EXPECT_EQ(v2_cgroup(child.pid()), name) << "the held child, before it runs its program";
  EXPECT_NE(v2_cgroup(::getpid()), name) << "powertrain moved into the cgroup";
  child.release();
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_NE(read_file(seen).find("0::" + name + "\n"), std::string::npos) << read_file(seen);
  EXPECT_NE(v2_cgroup(::getpid()), name);
}

// What the program starts in a new session after a double fork, its
// environment dropped, stays in the cgroup: its CPU time is the cgroup's, and
// it dies with the run.
const char* kEscaper = R"(import os, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(r)
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        os.write(w, str(os.getpid()).encode())
        os.close(w)
        os.execve("/bin/sleep", ["sleep", "1000"], {})
    os._exit(0)
os.close(w)
with open(sys.argv[1], "w") as f:
    f.write(os.read(r, 64).decode())
)";

TEST(CgroupChild, ADoubleForkedGrandchildIsCountedInTheCgroupAndKilledWithTheRun) {
  std::string why;
  auto cgroup = command_cgroup(why);
  if (!cgroup) GTEST_SKIP() << "no cgroup v2 can be made here: " << why;
  const std::string name = "/" + cgroup->dir().filename().string();
  TempDir dir;
  const auto script = dir / "escaper.py";
  std::ofstream(script) << kEscaper;
  const auto pid_file = dir / "pid";
  auto usage = cgroup->usage();
  const double before = usage->cpu_busy_seconds();
  pid_t grandchild = 0;
  {
    px::ChildSpec spec;
    spec.argv = {python(), script.string(), pid_file.string()};
    spec.cgroup = cgroup->dir().string();
    spec.token = false;  // the cgroup alone finds it
    px::Child child(spec);
    if (!child.in_cgroup()) GTEST_SKIP() << "the kernel refused clone3 into a cgroup here";
    ASSERT_EQ(wait_exit(child), 0);
    grandchild = std::stoi(read_file(pid_file));
    ASSERT_GT(grandchild, 0);
    EXPECT_FALSE(gone(grandchild));
    EXPECT_EQ(v2_cgroup(grandchild), name);
    EXPECT_GE(usage->cpu_busy_seconds() - before, 0.25) << "the grandchild's 0.3 CPU-seconds";
  }
  EXPECT_TRUE(gone(grandchild)) << grandchild << " outlived the run";
  std::ifstream procs(cgroup->dir() / "cgroup.procs");
  int left = 0;
  EXPECT_FALSE(procs >> left) << "still in the cgroup: " << left;
}

// The kernel's refusal, forced: the callback hears why before the fork, and
// the child runs where powertrain is.
TEST(CgroupChild, WhereClone3IsRefusedTheChildIsForkedAfterSayingWhy) {
  TempDir dir;
  const auto mark = dir / "ran";
  ScopedEnv off("POWERTRAIN_NO_CLONE3", "1");
  std::string why;
  auto cgroup = command_cgroup(why);  // a real one where allowed: it is still not used
  px::ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo ran > " + mark.string()};
  spec.contained = false;
  spec.held = true;
  spec.cgroup = cgroup ? cgroup->dir().string() : dir.path().string();
  std::string refused;
  spec.cgroup_refused = [&](const std::string& w) { refused = w; };
  px::Child child(spec);
  EXPECT_FALSE(child.in_cgroup());
  EXPECT_EQ(refused, "POWERTRAIN_NO_CLONE3 is set");
  EXPECT_EQ(v2_cgroup(child.pid()), v2_cgroup(::getpid())) << "forked where powertrain is";
  child.release();
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_EQ(read_file(mark), "ran\n");
}

// A real refusal by the kernel: a folder that is no cgroup.
TEST(CgroupChild, AFolderThatIsNoCgroupIsRefusedByTheKernelAndTheChildStillRuns) {
  TempDir dir;
  const auto mark = dir / "ran";
  px::ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo ran > " + mark.string()};
  spec.cgroup = dir.path().string();
  std::string refused;
  spec.cgroup_refused = [&](const std::string& w) { refused = w; };
  px::Child child(spec);
  EXPECT_FALSE(child.in_cgroup());
  EXPECT_NE(refused.find("clone3 into " + dir.path().string() + " refused: "), std::string::npos) << refused;
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_EQ(read_file(mark), "ran\n");
}

}  // namespace
