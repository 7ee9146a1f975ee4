// End-to-end: a signal while `measure --idle` takes its baseline ends it at
// once, and the command, which never started, is not reported as if it ran.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "run_cli.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;

TEST(MeasureSignals, SigtermDuringTheIdleBaselineRunsNothingAndSaysSo) {
  powertrain::testing::TempDir dir;
  const auto marker = dir / "ran";
  const auto report = dir / "m.json";
  const auto err = dir / "err";
  const std::string bin = powertrain::testing::powertrain_binary();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::execl(bin.c_str(), bin.c_str(), "measure", "--idle", "20", "--json", "-o", report.c_str(), "--", "touch",
            marker.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0)
      << "the idle period was waited out";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  std::stringstream ss;
  ss << std::ifstream(err).rdbuf();
  EXPECT_NE(ss.str().find("during the idle baseline; the command did not run"), std::string::npos) << ss.str();
  EXPECT_EQ(powertrain::testing::count_lines(ss.str()), 1) << ss.str();
  EXPECT_FALSE(fs::exists(marker)) << "the command ran";
  EXPECT_FALSE(fs::exists(report)) << "a report of a command that never ran";
}

}  // namespace

namespace {

TEST(MeasureChildren, ProcessesTheCommandLeavesRunningAreNamed) {
  powertrain::testing::TempDir dir;
  const auto report = dir / "m.json";
  const auto r = powertrain::testing::run_powertrain(
      {"measure", "--json", "-o", report.string(), "--", "sh", "-c", "sleep 3 & echo started"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::stringstream ss;
  ss << std::ifstream(report).rdbuf();
  EXPECT_NE(ss.str().find("1 process the command started was still running when it exited"), std::string::npos)
      << ss.str();
  const auto plain = powertrain::testing::run_powertrain({"measure", "--json", "-o", report.string(), "--", "true"});
  std::stringstream ss2;
  ss2 << std::ifstream(report).rdbuf();
  EXPECT_EQ(ss2.str().find("still running"), std::string::npos) << ss2.str();
}

}  // namespace
