// End-to-end tests of `powertrain devices` and `powertrain measure`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

using testing::count_lines;
using testing::read_file;
using testing::run_powertrain;
using testing::TempDir;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
  }
};

TEST_F(Cli, DevicesListsEverySourceWithReasons) {
  auto r = run_powertrain({"devices"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* s : {"nvml", "rapl", "perf", "rails", "estimate"}) EXPECT_NE(r.out.find(s), std::string::npos) << s;
  auto j = run_powertrain({"devices", "--json"});
  ASSERT_EQ(j.exit_code, 0);
  auto doc = nlohmann::json::parse(j.out);
  ASSERT_EQ(doc.size(), 5u);
  for (const auto& s : doc) {
    if (!s["available"].get<bool>()) {
      EXPECT_FALSE(s["reason"].get<std::string>().empty()) << s.dump();
    }
  }
}

TEST_F(Cli, MeasureSleepReportsAndLabelsEstimates) {
  TempDir dir;
  auto r = run_powertrain({"measure", "--json", "-o", (dir / "r.json").string(), "--", "sleep", "0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto doc = nlohmann::json::parse(read_file(dir / "r.json"));
  EXPECT_GE(doc["duration_s"].get<double>(), 0.3);
  EXPECT_GT(doc["energy_j"].get<double>(), 0.0);
  EXPECT_EQ(doc["command"][0], "sleep");
  // Every channel says how it was obtained; on a machine without counters that is "estimated".
  for (const auto& c : doc["channels"]) {
    const auto m = c["method"].get<std::string>();
    EXPECT_TRUE(m == "counter" || m == "sampled" || m == "estimated") << m;
  }
  bool has_counter = false;
  for (const auto& s : doc["sources"])
    if (s["available"].get<bool>() && s["source"] != "estimate") has_counter = true;
  if (!has_counter) {
    // The command's own share of the estimate (docs/measurement.md).
    EXPECT_EQ(doc["method"].get<std::string>().rfind("estimated, attributed by CPU-time share", 0), 0u) << doc["method"];
  }
  EXPECT_GE(doc["carbon"]["emissions_kg"].get<double>(), 0.0);
}

TEST_F(Cli, MeasureTextReportSaysEstimated) {
  auto r = run_powertrain({"measure", "--disable", "nvml", "--disable", "rapl", "--disable", "perf", "--disable",
                           "rails", "--", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("method: estimated"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not measured"), std::string::npos) << r.err;
}

TEST_F(Cli, MeasurePassesTheExitCodeThrough) {
  auto r = run_powertrain({"measure", "--", "sh", "-c", "exit 7"});
  EXPECT_EQ(r.exit_code, 7);
}

TEST_F(Cli, MeasureForwardsSigterm) {
  // The shell sends SIGTERM to powertrain (its parent); powertrain must pass it to the command.
  TempDir dir;
  auto r = run_powertrain({"measure", "-o", (dir / "r.txt").string(), "--", "sh", "-c",
                           "trap 'exit 42' TERM; kill -TERM $PPID; sleep 5 & wait"});
  EXPECT_EQ(r.exit_code, 42) << r.err;
}

TEST_F(Cli, CsvAppendsCodeCarbonRows) {
  TempDir dir;
  const auto csv = (dir / "emissions.csv").string();
  ASSERT_EQ(run_powertrain({"measure", "--csv", csv, "--", "true"}).exit_code, 0);
  ASSERT_EQ(run_powertrain({"measure", "--csv", csv, "--project-name", "p2", "--", "true"}).exit_code, 0);
  const auto text = read_file(csv);
  EXPECT_EQ(count_lines(text), 3);
  EXPECT_EQ(text.rfind("timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,", 0), 0u);
  EXPECT_NE(text.find(",p2,"), std::string::npos);
}

TEST_F(Cli, TimelineIsWritten) {
  TempDir dir;
  const auto tl = (dir / "timeline.csv").string();
  auto r = run_powertrain({"measure", "--interval", "20", "--timeline", tl, "--", "sleep", "0.3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto text = read_file(tl);
  EXPECT_EQ(text.rfind("t_s,", 0), 0u);
  EXPECT_GE(count_lines(text), 5);
}

TEST_F(Cli, BadInputGivesOneLineAndNonZeroExit) {
  TempDir dir;
  const std::vector<std::vector<std::string>> cases = {
      {"measure", "--bogus", "--", "true"},
      {"measure"},
      {"measure", "--", "no-such-command-powertrain"},
      {"measure", "--interval", "1", "--", "true"},
      {"measure", "--interval", "abc", "--", "true"},
      {"measure", "--csv", (dir / "missing-dir/x.csv").string(), "--", "true"},
      {"measure", "--carbon-table", (dir / "bad.csv").string(), "--", "true"},
      {"measure", "--region", "Atlantis", "--", "true"},
      {"measure", "--pue", "0.5", "--", "true"},
      {"frobnicate"},
  };
  testing::write_file(dir / "bad.csv", "code,name,gco2e_per_kwh\nXX,Nowhere,many\n");
  for (const auto& args : cases) {
    auto r = run_powertrain(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined;
    EXPECT_EQ(count_lines(r.err), 1) << joined << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("powertrain: ", 0), 0u) << joined << "\n" << r.err;
  }
  // Nothing half-written was left behind.
  EXPECT_FALSE(std::filesystem::exists(dir / "missing-dir"));
}

TEST_F(Cli, ExistingCsvIsNotTouchedOnBadInput) {
  TempDir dir;
  const auto csv = (dir / "e.csv").string();
  testing::write_file(csv, "keep me\n");
  auto r = run_powertrain({"measure", "--csv", csv, "--interval", "5", "--", "true"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(read_file(csv), "keep me\n");
}

}  // namespace
}  // namespace powertrain
