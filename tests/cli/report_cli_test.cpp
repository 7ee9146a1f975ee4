// End-to-end tests of `powertrain report`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "../report/report_fixtures.h"
#include "run_cli.h"
#include "temp_dir.h"

namespace powertrain {
namespace {

namespace fs = std::filesystem;
using testing::count_lines;
using testing::read_file;
using testing::run_powertrain;
using testing::TempDir;
using testing::write_file;

// Sets POWERTRAIN_GNUPLOT for the commands run in one scope (the child inherits it).
class GnuplotEnv {
 public:
  explicit GnuplotEnv(const char* value) {
    if (const char* old = std::getenv("POWERTRAIN_GNUPLOT")) old_ = old;
    ::setenv("POWERTRAIN_GNUPLOT", value, 1);
  }
  ~GnuplotEnv() {
    if (old_) {
      ::setenv("POWERTRAIN_GNUPLOT", old_->c_str(), 1);
    } else {
      ::unsetenv("POWERTRAIN_GNUPLOT");
    }
  }

 private:
  std::optional<std::string> old_;
};

class ReportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::powertrain_binary().empty()) GTEST_SKIP() << "POWERTRAIN_BINARY is not set (run through ctest)";
    testing::make_full_db(db());
  }
  fs::path db() const { return dir / "results.db"; }
  TempDir dir;
};

// The last line of stdout.
std::string last_line(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

TEST_F(ReportCli, WritesFiguresTablesAndPageAndPrintsItsPath) {
  if (!fs::exists("/usr/bin/gnuplot")) GTEST_SKIP() << "gnuplot is not installed";
  GnuplotEnv env("/usr/bin/gnuplot");
  const auto out = dir / "report";
  const auto r = run_powertrain({"report", db().string(), "--out", out.string(), "--study", "grid"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(last_line(r.out), (out / "report.html").string());
  EXPECT_TRUE(fs::exists(out / "report.html"));
  for (const char* f : {"study1-energy-per-epoch", "study1-epochs", "study1-energy-to-convergence", "study1-pareto",
                        "study1-run1-power"}) {
    EXPECT_GT(fs::file_size(out / "figures" / (std::string(f) + ".svg")), 1000u) << f;
    EXPECT_GT(fs::file_size(out / "figures" / (std::string(f) + ".png")), 1000u) << f;
  }
  EXPECT_TRUE(fs::exists(out / "tables" / "study1-configurations.csv"));
  const auto html = read_file(out / "report.html");
  EXPECT_NE(html.find("Use batch size 64 with learning rate 0.1"), std::string::npos);
  // Only the grid study.
  EXPECT_EQ(html.find("id=\"study-2\""), std::string::npos);
}

TEST_F(ReportCli, WithoutGnuplotSaysSoAndStillWritesTablesAndPage) {
  GnuplotEnv env("/nonexistent/gnuplot");
  const auto out = dir / "report";
  const auto r = run_powertrain({"report", db().string(), "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("gnuplot not found"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/gnuplot"), std::string::npos) << r.err;
  EXPECT_EQ(last_line(r.out), (out / "report.html").string());
  EXPECT_TRUE(fs::exists(out / "tables" / "study1-configurations.csv"));
  EXPECT_TRUE(fs::exists(out / "tables" / "study2-break-even.csv"));
  EXPECT_TRUE(fs::exists(out / "tables" / "study3-comparison.csv"));
  const auto html = read_file(out / "report.html");
  EXPECT_NE(html.find("No figures."), std::string::npos);
}

TEST_F(ReportCli, BadInputIsOneLineNonZeroAndWritesNothing) {
  GnuplotEnv env("/nonexistent/gnuplot");
  write_file(dir / "notes.txt", "not a database, just text\n");
  const auto out = dir / "report";
  const auto expect_error = [&](const std::vector<std::string>& args, const std::string& what) {
    SCOPED_TRACE(what);
    const auto r = run_powertrain(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_FALSE(fs::exists(out));
    for (const auto& e : fs::directory_iterator(dir.path()))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  };
  expect_error({"report", (dir / "missing.db").string(), "--out", out.string()}, "no such database file");
  expect_error({"report", (dir / "notes.txt").string(), "--out", out.string()}, "notes.txt");
  expect_error({"report", db().string(), "--out", out.string(), "--study", "nope"}, "no study named 'nope'");
  expect_error({"report", db().string(), "--out", (dir / "notes.txt" / "x").string()}, "not a directory");
  expect_error({"report", db().string(), "--out", "/proc/powertrain-report"}, "cannot write there");
  expect_error({"report", db().string(), "--out", out.string(), "--pue", "0.5"}, "PUE");
  expect_error({"report", db().string()}, "--out");
}

}  // namespace
}  // namespace powertrain
