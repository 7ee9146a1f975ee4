// Finding and running gnuplot; figure scripts render without errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "powertrain/report/figures.h"
#include "powertrain/report/gnuplot.h"
#include "temp_dir.h"

namespace powertrain::report {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::optional<fs::path> gnuplot_or_skip() {
  ScopedEnv env("POWERTRAIN_GNUPLOT", nullptr);
  return find_gnuplot().path;
}

TEST(FindGnuplot, EnvironmentNamingAMissingFileMeansNone) {
  ScopedEnv env("POWERTRAIN_GNUPLOT", "/nonexistent/gnuplot");
  const auto loc = find_gnuplot();
  EXPECT_FALSE(loc.path);
  EXPECT_NE(loc.reason.find("/nonexistent/gnuplot"), std::string::npos) << loc.reason;
  EXPECT_EQ(loc.reason.find('\n'), std::string::npos);
}

TEST(FindGnuplot, SearchesPath) {
  TempDir dir;
  {
    ScopedEnv env("POWERTRAIN_GNUPLOT", nullptr);
    ScopedEnv path("PATH", dir.path().c_str());
    const auto loc = find_gnuplot();
    EXPECT_FALSE(loc.path);
    EXPECT_NE(loc.reason.find("PATH"), std::string::npos);
  }
  if (!fs::exists("/usr/bin/gnuplot")) GTEST_SKIP() << "/usr/bin/gnuplot is not installed";
  ScopedEnv env("POWERTRAIN_GNUPLOT", nullptr);
  ScopedEnv path("PATH", (dir.path().string() + ":/usr/bin").c_str());
  const auto loc = find_gnuplot();
  ASSERT_TRUE(loc.path);
  EXPECT_EQ(*loc.path, fs::path("/usr/bin/gnuplot"));
}

TEST(GnuplotQuote, DoublesQuotesAndDropsLineBreaks) {
  EXPECT_EQ(gnuplot_quote("it's"), "'it''s'");
  EXPECT_EQ(gnuplot_quote("a\nb"), "'a b'");
}

TEST(Render, WritesSvgAndPng) {
  const auto gp = gnuplot_or_skip();
  if (!gp) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir;
  Figure f;
  f.name = "simple";
  f.data.push_back({"points", "1 2\n2 4\n3 1\n"});
  f.script = "set xlabel 'x (s)'\nplot data('points') using 1:2 with linespoints title 'it''s <fine>'\n";
  const auto r = render(*gp, f, dir.path());
  EXPECT_GT(fs::file_size(r.svg), 500u);
  EXPECT_GT(fs::file_size(r.png), 500u);
  EXPECT_TRUE(fs::exists(dir / "simple.gp"));
  EXPECT_FALSE(fs::exists(dir / "simple.gp.err"));
}

TEST(Render, ReportsGnuplotsErrorInOneLine) {
  const auto gp = gnuplot_or_skip();
  if (!gp) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir;
  Figure f;
  f.name = "broken";
  f.script = "plot sin(x) with nonsense\n";
  try {
    render(*gp, f, dir.path());
    FAIL() << "no error";
  } catch (const FigureError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("figure broken: gnuplot failed"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(Render, RejectsUnknownDataFiles) {
  Figure f;
  f.name = "x";
  f.script = "plot data('nope') using 1:2\n";
  TempDir dir;
  EXPECT_THROW(render("/bin/true", f, dir.path()), FigureError);
}

TEST(FormatNumber, SignificantDigitsWithoutNoise) {
  EXPECT_EQ(format_number(0.0), "0");
  EXPECT_EQ(format_number(1234.567), "1235");
  EXPECT_EQ(format_number(12.3456), "12.35");
  EXPECT_EQ(format_number(0.01), "0.01");
  EXPECT_EQ(format_number(0.91234), "0.9123");
  EXPECT_EQ(format_number(-2.5), "-2.5");
  EXPECT_EQ(format_number(std::nan("")), "-");
  EXPECT_EQ(format_number(std::optional<double>{}), "-");
  EXPECT_EQ(format_number(2e-6), "2.000e-06");
}

TEST(EnergyUnit, PicksAReadableUnit) {
  EXPECT_EQ(energy_unit_for(500).name, "J");
  EXPECT_EQ(energy_unit_for(5e4).name, "kJ");
  EXPECT_EQ(energy_unit_for(5e7).name, "MJ");
}

// Every kind of figure renders, including edge cases: empty inputs, one
// cell, labels with quotes and markup.
TEST(Figures, EveryKindRendersEvenWhenSparse) {
  const auto gp = gnuplot_or_skip();
  if (!gp) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir;
  HeatmapInput h;
  h.name = "heat";
  h.x_label = "batch size (samples)";
  h.y_label = "learning rate";
  h.value_label = "energy (J)";
  h.x_labels = {"16", "32"};
  h.y_labels = {"0.1"};
  h.cells = {{0, 0, 10.0, "10", ""}, {1, 0, std::nullopt, "", "diverged \"x\""}};
  h.highlight = std::make_pair(std::size_t{0}, std::size_t{0});
  HeatmapInput empty = h;
  empty.name = "heat-empty";
  empty.cells.clear();
  ParetoInput p;
  p.name = "pareto";
  p.points = {{100, 0.8, "a 'b' \"c\"", true}, {200, 0.9, "<d>", true}, {300, 0.85, "e", false}};
  ParetoInput p0;
  p0.name = "pareto-empty";
  CumulativeInput c;
  c.name = "cum";
  c.lines = {{"scratch", 0, 100, {{1, 100}}}, {"reuse", 150, 40, {{0, 150}, {1, 190}}}};
  c.marks = {{2.5, 250, "break-even"}};
  BarInput b;
  b.name = "bars";
  b.y_label = "energy (J)";
  b.categories = {"a", "b", "all"};
  b.series = {{"single", {1.0, 2.0, 3.0}}, {"multi", {std::nullopt, std::nullopt, 2.5}}};
  BarInput b0 = b;
  b0.name = "bars-empty";
  b0.series = {{"single", {std::nullopt}}};
  for (const auto& f : {heatmap_figure(h), heatmap_figure(empty), pareto_figure(p), pareto_figure(p0), cumulative_figure(c),
                        bar_figure(b), bar_figure(b0)}) {
    SCOPED_TRACE(f.name);
    const auto r = render(*gp, f, dir.path());
    EXPECT_GT(fs::file_size(r.svg), 500u);
    EXPECT_GT(fs::file_size(r.png), 500u);
  }
}

}  // namespace
}  // namespace powertrain::report
