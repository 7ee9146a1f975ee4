// End-to-end: `powertrain` links and loads no LibTorch, lists every command,
// names the LibTorch without loading it, and hands the commands that train
// over to `powertrain-train` in the same process.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "run_cli.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;
using powertrain::testing::count_lines;
using powertrain::testing::powertrain_binary;
using powertrain::testing::run_program;
using powertrain::testing::spawn_powertrain;
using powertrain::testing::TempDir;

std::string training_binary() { return (fs::path(powertrain_binary()).parent_path() / "powertrain-train").string(); }

// The first library of LibTorch or CUDA named in `text` (ldd's output, a
// process's memory map), or empty.
std::string torch_library_in(const std::string& text) {
  for (const char* name : {"libtorch", "libc10", "libcuda", "libcudart", "libcublas", "libcudnn", "libnccl"})
    if (text.find(name) != std::string::npos) return name;
  return "";
}

TEST(LiteCli, ThePowertrainExecutableLinksNoLibTorchNorCuda) {
  const auto light = run_program("/usr/bin/ldd", {powertrain_binary()});
  ASSERT_EQ(light.exit_code, 0) << light.err;
  EXPECT_EQ(torch_library_in(light.out), "") << light.out;
  // The check sees LibTorch where it is linked: the training executable's.
  const auto heavy = run_program("/usr/bin/ldd", {training_binary()});
  ASSERT_EQ(heavy.exit_code, 0) << heavy.err;
  EXPECT_EQ(torch_library_in(heavy.out), "libtorch") << heavy.out;
}

TEST(LiteCli, MeasureRunsWithoutLibTorchInItsProcess) {
  // The measured command's parent is powertrain itself: its memory map is
  // read while it runs.
  const auto r = run_program(powertrain_binary(), {"measure", "--", "/bin/sh", "-c", "cat /proc/$PPID/maps"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_NE(r.out.find("powertrain"), std::string::npos) << r.out;
  EXPECT_EQ(torch_library_in(r.out), "") << r.out;
}

// What --help prints, its usage line (which names the executable) left out.
std::string help_of(const std::string& binary) {
  const auto r = run_program(binary, {"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto usage = r.out.find("\nUsage: ");
  if (usage == std::string::npos) return r.out;
  return r.out.substr(0, usage + 1) + r.out.substr(r.out.find('\n', usage + 1) + 1);
}

TEST(LiteCli, HelpListsEveryCommandAsTheTrainingExecutableDoes) {
  const auto light = help_of(powertrain_binary());
  EXPECT_EQ(light, help_of(training_binary()));
  for (const char* command : {"devices", "measure", "burn", "train", "sweep", "study", "search", "results", "report",
                              "collect", "status"})
    EXPECT_NE(light.find(std::string("\n  ") + command + " "), std::string::npos) << command << "\n" << light;
}

TEST(LiteCli, VersionNamesTheLibTorchTheTrainingExecutableLoads) {
  const auto light = run_program(powertrain_binary(), {"--version"});
  const auto heavy = run_program(training_binary(), {"--version"});
  ASSERT_EQ(light.exit_code, 0) << light.err;
  ASSERT_EQ(heavy.exit_code, 0) << heavy.err;
  const auto libtorch_line = [](const std::string& out) {
    const auto at = out.find("\nLibTorch ");
    return at == std::string::npos ? std::string() : out.substr(at + 1, out.find('\n', at + 1) - at - 1);
  };
  const auto named = libtorch_line(light.out);
  ASSERT_FALSE(named.empty()) << light.out;
  // "LibTorch 2.15.0: CUDA 13.2 compiled in" beside "...compiled in, 0 GPUs visible".
  EXPECT_EQ(libtorch_line(heavy.out).rfind(named, 0), 0u) << light.out << heavy.out;
  EXPECT_EQ(light.out.substr(0, light.out.find('\n')), heavy.out.substr(0, heavy.out.find('\n')));
}

TEST(LiteCli, ACommandThatTrainsIsRunByTheTrainingExecutable) {
  // Its own options: parsed there.
  const auto help = run_program(powertrain_binary(), {"train", "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("--dataset"), std::string::npos) << help.out;
  const auto bad = run_program(powertrain_binary(), {"train", "--max-epochs", "0", "--quiet"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(count_lines(bad.err), 1) << bad.err;
}

TEST(LiteCli, TheHandOverKeepsTheProcess) {
  TempDir dir;
  const auto log = (dir / "log").string();
  const int pid = spawn_powertrain({"train", "--dataset", "synthetic-images", "--data", "train_samples=64",
                                    "--max-epochs", "100000", "--patience", "0", "--db", (dir / "runs.db").string(),
                                    "--quiet"},
                                   log);
  ASSERT_GT(pid, 0);
  // The same process becomes the training executable.
  const auto exe = fs::path("/proc") / std::to_string(pid) / "exe";
  bool handed_over = false;
  for (int i = 0; i < 400 && !handed_over; ++i) {
    std::error_code ec;
    handed_over = fs::read_symlink(exe, ec).filename() == "powertrain-train";
    if (!handed_over) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(handed_over);
  // And a signal to that process, once the run has started (its store is
  // made just before), stops the run as it did before.
  for (int i = 0; i < 800 && !fs::exists(dir / "runs.db"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 130) << powertrain::testing::read_file(log);
}

TEST(LiteCli, AMissingTrainingExecutableIsOneLine) {
  TempDir dir;
  const auto alone = dir / "powertrain";
  fs::copy_file(powertrain_binary(), alone);
  fs::permissions(alone, fs::perms::owner_all);
  const auto r = run_program(alone.string(), {"train", "--dataset", "synthetic-images", "--quiet"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("powertrain: `train` needs the training part of powertrain, " + (dir / "powertrain-train").string() +
                       ", which is missing"),
            std::string::npos)
      << r.err;
  // The commands that train nothing still run.
  const auto v = run_program(alone.string(), {"--version"});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(run_program(alone.string(), {"measure", "--", "true"}).exit_code, 0);
}

}  // namespace
