// End-to-end tests of input that used to be accepted silently or found late
// (issue 12, items 6, 7, 9, 11, 13 and some of 14): each is one line and a
// non-zero exit before anything runs or is recorded.
#include <gtest/gtest.h>

#include <filesystem>

#include "powertrain/store/store.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

namespace fs = std::filesystem;
using testing::count_lines;
using testing::run_powertrain;
using testing::TempDir;
using testing::write_file;

class InputChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
  }
  // A quick built-in training run on synthetic data, plus `extra` (with --threads 1 when training is meant to run).
  std::vector<std::string> quick_train(std::vector<std::string> extra) const {
    std::vector<std::string> args{"train", "--dataset", "synthetic-images", "--data", "train_samples=64",
                                  "--data", "eval_samples=32", "--data", "image_size=8", "--db", db(), "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  std::string db() const { return (dir / "runs.db").string(); }
  TempDir dir;
};

void expect_one_line_error(const testing::CliResult& r, const std::string& part, const std::string& what) {
  EXPECT_NE(r.exit_code, 0) << what << "\n" << r.err;
  EXPECT_NE(r.exit_code, 70) << what << ": not an internal error\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << what << "\n" << r.err;
  EXPECT_NE(r.err.find(part), std::string::npos) << what << "\n" << r.err;
}

// Item 6: --config was ignored entirely.
TEST_F(InputChecks, TrainConfigFileIsReadAndTheCommandLineWins) {
  write_file(dir / "run.toml", "max_epochs = 1\nbatch_size = 48\nlearning-rate = 0.05\ndata = [\"noise=0.1\"]\n");
  const auto r = run_powertrain(quick_train({"--config", (dir / "run.toml").string(), "--seed", "3", "--threads", "1"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("after 1 epochs"), std::string::npos) << r.out;
  {
    auto store = store::Store::open_readonly(db());
    const auto runs = store.list_runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].config.batch_size, 48);
    EXPECT_EQ(runs[0].config.max_epochs, 1);
    EXPECT_DOUBLE_EQ(runs[0].config.learning_rate, 0.05);
    EXPECT_EQ(runs[0].config.seed, 3u);
  }
  // The command line wins over the file.
  const auto r2 = run_powertrain(quick_train({"--config", (dir / "run.toml").string(), "--batch-size", "16", "--threads", "1"}));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto store = store::Store::open_readonly(db());
  EXPECT_EQ(store.list_runs().back().config.batch_size, 16);
}

TEST_F(InputChecks, TrainConfigFileErrorsAreOneLine) {
  write_file(dir / "typo.toml", "max_epoch = 1\n");
  write_file(dir / "syntax.toml", "max_epochs = = 1\n");
  write_file(dir / "type.toml", "max_epochs = \"many\"\n");
  fs::create_directories(dir / "folder");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {(dir / "missing.toml").string(), "no such config file"},
      {(dir / "typo.toml").string(), "'max_epoch' is not an option"},
      {(dir / "syntax.toml").string(), "syntax.toml:1:"},
      {(dir / "type.toml").string(), "'max_epochs'"},
      {(dir / "folder").string(), "is a directory"},
  };
  for (const auto& [file, part] : cases) {
    const auto r = run_powertrain(quick_train({"--config", file}));
    expect_one_line_error(r, part, file);
  }
  EXPECT_FALSE(fs::exists(db())) << "nothing was recorded";
}

// Item 7: a directory as SPEC became an empty spec: the default 16-trial grid.
TEST_F(InputChecks, DirectoryAsSpecIsAnError) {
  const auto r = run_powertrain({"sweep", dir.path().string(), "--db", db(), "--quiet"});
  expect_one_line_error(r, "is a directory", "sweep DIR");
  EXPECT_FALSE(fs::exists(db()));
}

// Item 9: the estimate's flags fell back to defaults or gave 0 J.
TEST_F(InputChecks, MeasureEstimateFlagsAreChecked) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--cpu-idle-w", "-1"}, "--cpu-idle-w"},
      {{"--cpu-idle-w", "nan"}, "--cpu-idle-w"},
      {{"--memory-w-per-gb", "-0.5"}, "--memory-w-per-gb"},
      {{"--cpu-full-w", "inf"}, "--cpu-full-w"},
      {{"--cpu-full-w", "0.1", "--cpu-idle-w", "2"}, "must not be below"},
      {{"--idle", "nan"}, "--idle"},
      {{"--disable", "bogus"}, "no energy source named 'bogus'"},
  };
  for (const auto& [flags, part] : cases) {
    std::vector<std::string> args{"measure"};
    args.insert(args.end(), flags.begin(), flags.end());
    for (const char* a : {"--", "touch"}) args.emplace_back(a);
    args.push_back((dir / "ran").string());
    expect_one_line_error(run_powertrain(args), part, flags.front());
    EXPECT_FALSE(fs::exists(dir / "ran")) << flags.front();
  }
  expect_one_line_error(run_powertrain(quick_train({"--disable", "nvm"})), "no energy source named 'nvm'", "train --disable");
}

// Items 11, 13, 14: numbers out of range are refused before anything runs.
TEST_F(InputChecks, TrainNumbersOutOfRangeAreOneLineBeforeTraining) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--threads", "100000"}, "threads must be between 0"},
      {{"--lr", "1e300"}, "learning_rate must be in (0, 1000000], got 1e+300"},
      {{"--lr", "nan"}, "learning_rate must be"},
      {{"--min-delta", "nan"}, "min_delta"},
      {{"--batch-size", "99999999999999999999"}, "batch"},
      {{"--seed", "-1"}, "seed"},
      {{"--seed", "18446744073709551616"}, "seed"},
      {{"--checkpoint", (dir / "no-such-dir" / "m.pt").string()}, "does not exist"},
  };
  for (const auto& [flags, part] : cases) {
    const auto r = run_powertrain(quick_train(flags));
    expect_one_line_error(r, part, flags.front() + " " + flags.back());
  }
  EXPECT_FALSE(fs::exists(db())) << "nothing was recorded";
}

// Item 14: `powertrain --bogus` said "A subcommand is required".
TEST_F(InputChecks, UnknownTopLevelOptionIsNamed) {
  const auto r = run_powertrain({"--bogus"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("'--bogus'"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace powertrain

namespace powertrain {
namespace {

TEST(TerminalOutput, EscapeSequencesInNamesAreShownNotSentToTheTerminal) {
  TempDir dir;
  write_file(dir / "s.toml", "name = \"evil\\u001b]0;pwned\\u0007\\u001b[2J\"\nkind = \"grid\"\n"
                             "[workload]\ndataset = \"synthetic-images\"\n[workload.data]\ntrain_samples = 32\n"
                             "eval_samples = 16\n[training]\nmax_epochs = 1\nthreads = 1\n"
                             "[grid]\nbatch_sizes = [16]\nlearning_rates = [0.01]\n");
  const auto db = (dir / "r.db").string();
  const auto r = run_powertrain({"sweep", (dir / "s.toml").string(), "--db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto* stream : {&r.out, &r.err}) {
    EXPECT_EQ(stream->find('\x1b'), std::string::npos) << *stream;
    EXPECT_EQ(stream->find('\x07'), std::string::npos) << *stream;
  }
  EXPECT_NE(r.err.find("evil\\x1b]0;pwned"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace powertrain
