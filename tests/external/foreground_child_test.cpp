// A foreground command (external::Child not contained), as `powertrain
// measure` runs it, and a held child, started but run only on release().
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "powertrain/error.h"
#include "powertrain/external/process.h"
#include "temp_dir.h"

namespace px = powertrain::external;
using powertrain::testing::read_file;
using powertrain::testing::TempDir;

namespace {

int wait_exit(px::Child& child) {
  for (int i = 0; i < 1000; ++i) {
    if (const auto st = child.poll_exit()) return WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

TEST(ForegroundChild, AHeldChildRunsItsProgramOnlyOnRelease) {
  TempDir dir;
  const auto mark = dir / "ran";
  px::ChildSpec spec;
  spec.argv = {"/bin/sh", "-c", "echo ran > " + mark.string()};
  spec.held = true;
  px::Child child(spec);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(std::filesystem::exists(mark)) << "the program ran before release()";
  EXPECT_FALSE(child.poll_exit().has_value());
  child.release();
  EXPECT_EQ(wait_exit(child), 0);
  EXPECT_EQ(read_file(mark), "ran\n");
}

TEST(ForegroundChild, AHeldChildNeverReleasedNeverRunsItsProgram) {
  TempDir dir;
  const auto mark = dir / "ran";
  pid_t pid = 0;
  {
    px::ChildSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo ran > " + mark.string()};
    spec.held = true;
    spec.contained = false;
    px::Child child(spec);
    pid = child.pid();
  }
  EXPECT_FALSE(std::filesystem::exists(mark));
  EXPECT_NE(::kill(pid, 0), 0) << "the child is gone and reaped";
}

TEST(ForegroundChild, ItKeepsOurProcessGroupAndOutputAndRunsTheProgramGiven) {
  TempDir dir;
  const auto out = dir / "out";
  px::ChildSpec spec;
  // argv[0] only names it: the program run is the one given.
  spec.argv = {"a-name-of-its-own", "-c", "echo $0 > " + out.string() + "; exit 3"};
  spec.program = "/bin/sh";
  spec.contained = false;
  spec.env = {{"POWERTRAIN_TEST_VALUE", "x"}};
  px::Child child(spec);
  EXPECT_EQ(::getpgid(child.pid()), ::getpgrp()) << "a foreground command stays in powertrain's process group";
  EXPECT_EQ(child.stdout_fd(), -1);
  EXPECT_EQ(child.stderr_fd(), -1);
  EXPECT_EQ(wait_exit(child), 3);
  EXPECT_EQ(read_file(out), "a-name-of-its-own\n");
}

TEST(ForegroundChild, AProgramThatCannotRunIsAnErrorOnRelease) {
  TempDir dir;
  const auto not_a_program = dir / "text";
  powertrain::testing::write_file(not_a_program, "no shebang, not executable\n");
  px::ChildSpec spec;
  spec.argv = {not_a_program.string()};
  spec.program = not_a_program.string();
  spec.contained = false;
  spec.held = true;
  px::Child child(spec);
  try {
    child.release();
    FAIL() << "release() did not throw";
  } catch (const powertrain::WorkloadError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run " + not_a_program.string() + ": Permission denied"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(child.exited());
}

}  // namespace
