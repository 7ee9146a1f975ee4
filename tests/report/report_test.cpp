// write_report() on fixture databases of every kind of study.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "powertrain/error.h"
#include "powertrain/report/report.h"
#include "report_fixtures.h"
#include "temp_dir.h"

namespace powertrain::report {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

store::OpenOptions fast() { return {std::chrono::milliseconds(5000), store::Durability::normal}; }

std::optional<GnuplotLocation> no_gnuplot() { return GnuplotLocation{std::nullopt, "gnuplot not found (test)"}; }

bool have_gnuplot() { return fs::exists("/usr/bin/gnuplot"); }

ReportOptions options(const fs::path& db, const fs::path& out, std::optional<std::string> study = {}) {
  ReportOptions o;
  o.db = db;
  o.out_dir = out;
  o.study = std::move(study);
  if (have_gnuplot()) o.gnuplot = GnuplotLocation{fs::path("/usr/bin/gnuplot"), ""};
  return o;
}

// Entries of a directory, recursively, as relative paths.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    // SQLite's WAL files beside the database come and go with its connections.
    if (rel.ends_with("-wal") || rel.ends_with("-shm")) continue;
    out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Figures the page refers to, and that each is an SVG inlined as a data URI.
void expect_figures_inlined(const std::string& html, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    const auto at = html.find("<figure id=\"fig-" + n + "\">");
    ASSERT_NE(at, std::string::npos) << n;
    const auto end = html.find("</figure>", at);
    const auto img = html.find("src=\"data:image/svg+xml;base64,", at);
    EXPECT_TRUE(img != std::string::npos && img < end) << n << " is not inlined";
  }
}

// Each figure was drawn as a non-empty SVG and PNG.
void expect_figure_files(const fs::path& out, const std::vector<std::string>& names) {
  for (const auto& n : names) {
    for (const char* ext : {".svg", ".png"}) {
      const auto p = out / "figures" / (n + ext);
      ASSERT_TRUE(fs::exists(p)) << p;
      EXPECT_GT(fs::file_size(p), 1000u) << p;
    }
  }
}

class Report : public ::testing::Test {
 protected:
  TempDir dir;
  fs::path db_path() const { return dir / "results.db"; }
};

TEST_F(Report, GridStudyHasHeatmapsParetoRankingAndRecommendation) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  {
    auto db = store::Store::open(db_path(), fast());
    testing::add_grid_study(db);
  }
  const auto r = write_report(options(db_path(), dir / "out"));
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  EXPECT_EQ(r.figures_drawn, r.figures_planned);
  EXPECT_EQ(r.html, dir / "out" / "report.html");
  const std::vector<std::string> figures = {"study1-energy-per-epoch", "study1-epochs", "study1-energy-to-convergence",
                                            "study1-pareto"};
  expect_figure_files(dir / "out", figures);
  // Every run has its power timeline figure.
  for (int run = 1; run <= 18; ++run) expect_figure_files(dir / "out", {"study1-run" + std::to_string(run) + "-power"});
  const auto html = read_file(r.html);
  expect_figures_inlined(html, figures);
  // Batch size 64 at lr 0.1 has the top metric (0.873) and is the cheapest within
  // 0.01 of it; 256 at 0.01 is cheapest overall at 0.823; 16 at 0.001 is the worst.
  EXPECT_NE(html.find("Use batch size 64 with learning rate 0.1: the cheapest setup whose final metric"),
            std::string::npos);
  EXPECT_NE(html.find("The cheapest setup overall, batch size 256 with learning rate 0.01, used"), std::string::npos);
  // Savings compare setups of one quality only (issue 15): within 0.01 of the
  // top metric there is no other, so none is quoted against the worst.
  EXPECT_NE(html.find("No other setup reached that quality (405 J"), std::string::npos);
  EXPECT_EQ(html.find("less energy to converge than"), std::string::npos);
  EXPECT_NE(html.find("diverged"), std::string::npos);
  EXPECT_NE(html.find("Every energy number in this report is an estimate"), std::string::npos);
  for (const char* t : {"study1-configurations", "study1-factor-effects", "study1-trials", "studies", "method",
                        "environment", "carbon"}) {
    EXPECT_TRUE(fs::exists(dir / "out" / "tables" / (std::string(t) + ".csv"))) << t;
  }
  const auto csv = read_file(dir / "out" / "tables" / "study1-configurations.csv");
  EXPECT_NE(csv.find("rank,batch size,learning rate"), std::string::npos);
}

TEST_F(Report, PretrainStudyMarksBreakEven) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  {
    auto db = store::Store::open(db_path(), fast());
    testing::add_pretrain_study(db);
  }
  const auto r = write_report(options(db_path(), dir / "out"));
  EXPECT_EQ(r.figures_drawn, r.figures_planned);
  expect_figure_files(dir / "out", {"study1-cumulative", "study1-run1-power"});
  const auto html = read_file(r.html);
  expect_figures_inlined(html, {"study1-cumulative", "study1-run1-power"});
  // Pretraining 5 x 100 J = 500 J... per task: scratch 400 J, fine-tune 200 J, frozen 270 J.
  // Fine-tune: 500 / (400 - 200) = 2.5 reuses; frozen: 500 / 130 = 3.85.
  EXPECT_NE(html.find("pays back after 2.5 reuses"), std::string::npos);
  EXPECT_NE(html.find("pays back after 3.85 reuses"), std::string::npos);
  EXPECT_NE(html.find("Pretrain once and fine-tune the encoder if it will serve at least 3 tasks"), std::string::npos);
  const auto gp = read_file(dir / "out" / "figures" / "study1-cumulative.gp");
  EXPECT_NE(gp.find("break-even"), std::string::npos);
  EXPECT_NE(gp.find("set xlabel"), std::string::npos);
  EXPECT_NE(gp.find("(J)"), std::string::npos);
}

TEST_F(Report, MultitaskStudyComparesSharedAndSingleModels) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  {
    auto db = store::Store::open(db_path(), fast());
    testing::add_multitask_study(db, "multi <b>&", {"smiling", "<script>alert(1)</script>", "male"});
  }
  const auto r = write_report(options(db_path(), dir / "out", "multi <b>&"));
  EXPECT_EQ(r.figures_drawn, r.figures_planned);
  const std::vector<std::string> figures = {"study1-energy", "study1-epochs", "study1-metric", "study1-run4-power"};
  expect_figure_files(dir / "out", figures);
  const auto html = read_file(r.html);
  expect_figures_inlined(html, figures);
  // Singles: 40 W x 2 s x (3 + 4 + 5) epochs = 960 J; shared: 42 W x 2 s x 6 = 504 J.
  EXPECT_NE(html.find("Train one multitask model: one shared model for the 3 tasks used 47.5% less energy"),
            std::string::npos);
  // Text from the database is escaped everywhere.
  EXPECT_EQ(html.find("<script>"), std::string::npos);
  EXPECT_EQ(html.find("<b>&"), std::string::npos);
  EXPECT_NE(html.find("multi &lt;b&gt;&amp;"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
}

TEST_F(Report, WholeDatabaseHasEveryStudyRunsEnvironmentAndMethod) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  testing::make_full_db(db_path());
  const auto r = write_report(options(db_path(), dir / "out"));
  EXPECT_EQ(r.figures_drawn, r.figures_planned);
  EXPECT_TRUE(r.warnings.empty());
  const auto html = read_file(r.html);
  for (const char* s : {"id=\"overview\"", "id=\"study-1\"", "id=\"study-2\"", "id=\"study-3\"", "id=\"runs\"",
                        "id=\"method\"", "id=\"environment\""}) {
    EXPECT_NE(html.find(s), std::string::npos) << s;
  }
  // The plain run used counters: only some numbers are estimates.
  EXPECT_NE(html.find("Some energy numbers in this report are estimates"), std::string::npos);
  // Environment: host (escaped), CPU, torch, commit, threads, sampling.
  for (const char* s : {"build-node &lt;7&gt;", "AMD EPYC 7B13", "2.1.2", "0123456789ab", "interval 100 ms"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // Method: per component, the method, sampling, PUE and intensity.
  for (const char* s : {"estimated from utilization", "measured by a hardware energy counter", "a PUE of 1 (the default",
                        "gCO2e/kWh from WORLD", "carbon.h"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  // The page refers to nothing outside itself.
  for (const auto& re : {std::regex("(src|href)=\"(?!data:|#)"), std::regex("url\\("), std::regex("@import")})
    EXPECT_FALSE(std::regex_search(html, re));
  // The plain run's timeline.
  expect_figure_files(dir / "out", {"runs-run33-power"});
  // Nothing is left of the staging directory.
  for (const auto& e : listing(dir.path())) EXPECT_EQ(e.find(".tmp-"), std::string::npos) << e;
}

// Studies whose trials have not run yet (or only failed) still get every figure.
TEST_F(Report, StudiesWithoutResultsStillRender) {
  if (!have_gnuplot()) GTEST_SKIP() << "gnuplot is not installed";
  {
    auto db = store::Store::open(db_path(), fast());
    const auto env = testing::report_environment();
    for (const std::string kind : {"grid", "pretrain", "multitask"}) {
      const auto id = db.create_study(kind, kind, "", env);
      store::TrialSpec spec;
      spec.config = testing::report_config(64, 0.01, 1);
      spec.key = "pending";
      spec.phase = kind == "grid" ? "" : kind == "pretrain" ? "scratch" : "single";
      spec.step = kind == "pretrain" ? 1 : 0;
      spec.task = kind == "multitask" ? "smiling" : "";
      db.upsert_trial(id, spec);
      spec.key = "failed";
      spec.config.seed = 2;
      const auto t = db.upsert_trial(id, spec);
      db.start_trial(t, spec.config, env);
      db.mark_trial_failed(t, "dataset missing");
    }
  }
  const auto r = write_report(options(db_path(), dir / "out"));
  EXPECT_EQ(r.figures_drawn, r.figures_planned) << (r.warnings.empty() ? "" : r.warnings.front());
  EXPECT_GT(r.figures_planned, 5);
  const auto html = read_file(r.html);
  EXPECT_NE(html.find("No configuration has a usable result yet"), std::string::npos);
  EXPECT_NE(html.find("No run has a power timeline yet."), std::string::npos);
}

TEST_F(Report, CustomCarbonSettingsAreReported) {
  {
    auto db = store::Store::open(db_path(), fast());
    testing::add_plain_run(db);
  }
  auto o = options(db_path(), dir / "out");
  o.gnuplot = no_gnuplot();
  o.carbon.pue = 1.5;
  o.carbon.region = "FRA";
  const auto html = read_file(write_report(o).html);
  EXPECT_NE(html.find("a PUE of 1.5 and"), std::string::npos);
  EXPECT_NE(html.find("from FRA"), std::string::npos);
  o.carbon.pue = 0.5;
  EXPECT_THROW(write_report(o), ConfigError);
}

TEST_F(Report, WithoutGnuplotTablesAndPageAreStillWritten) {
  testing::make_full_db(db_path());
  auto o = options(db_path(), dir / "out");
  o.gnuplot = no_gnuplot();
  const auto r = write_report(o);
  EXPECT_FALSE(r.gnuplot_found);
  EXPECT_EQ(r.figures_drawn, 0);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("gnuplot not found"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out" / "figures"));
  EXPECT_TRUE(fs::exists(dir / "out" / "tables" / "study1-configurations.csv"));
  const auto html = read_file(r.html);
  EXPECT_NE(html.find("No figures."), std::string::npos);
  EXPECT_NE(html.find("Figure not drawn: gnuplot not found (test)"), std::string::npos);
  EXPECT_NE(html.find("Use batch size 64 with learning rate 0.1"), std::string::npos);
}

TEST_F(Report, BadInputFailsWithOneLineAndWritesNothing) {
  testing::make_full_db(db_path());
  write_file(dir / "not-a-db", "hello, I am not a database at all, not even SQLite\n");
  write_file(dir / "afile", "x");
  const auto expect_error = [&](ReportOptions o, const std::string& what) {
    SCOPED_TRACE(what);
    o.gnuplot = no_gnuplot();
    const auto before = listing(dir.path());
    try {
      write_report(o);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(what), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_EQ(listing(dir.path()), before);
  };
  expect_error(options(dir / "missing.db", dir / "out"), "no such database file");
  expect_error(options(dir / "not-a-db", dir / "out"), "not-a-db");
  expect_error(options(db_path(), dir / "out", "nope"), "no study named 'nope'");
  expect_error(options(db_path(), dir / "afile"), "not a directory");
  expect_error(options(db_path(), dir / "afile" / "out"), "not a directory");
  expect_error(options(db_path(), dir / "no" / "such" / "parent"), "does not exist");
  // /proc refuses new directories even to root.
  if (fs::exists("/proc/self")) expect_error(options(db_path(), "/proc/powertrain-report"), "cannot write there");
}

TEST_F(Report, EmptyDatabaseIsAnError) {
  { auto db = store::Store::open(db_path(), fast()); }
  auto o = options(db_path(), dir / "out");
  o.gnuplot = no_gnuplot();
  EXPECT_THROW(write_report(o), ConfigError);
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST_F(Report, ExistingOutputDirectoryKeepsOtherFilesAndReplacesTheReport) {
  {
    auto db = store::Store::open(db_path(), fast());
    testing::add_plain_run(db);
  }
  fs::create_directories(dir / "out");
  write_file(dir / "out" / "notes.txt", "mine");
  // An earlier report's page (a page of something else is refused: output_files_test).
  write_file(dir / "out" / "report.html", "<meta name=\"generator\" content=\"powertrain report\">old");
  auto o = options(db_path(), dir / "out");
  o.gnuplot = no_gnuplot();
  const auto r = write_report(o);
  EXPECT_EQ(read_file(dir / "out" / "notes.txt"), "mine");
  EXPECT_NE(read_file(r.html), "old");
  EXPECT_EQ(r.files.back(), dir / "out" / "report.html");
  for (const auto& e : listing(dir / "out")) EXPECT_EQ(e.find(".tmp-"), std::string::npos) << e;
}

// A study of the user's program names the program in its header, not a
// dataset and model it never had (issue 25: "Dataset - · model -").
TEST_F(Report, AStudyOfAProgramNamesItsProgram) {
  {
    auto db = store::Store::open(db_path(), fast());
    const auto id = db.create_study("ext", "grid", "kind = \"grid\"", testing::report_environment());
    for (std::int64_t bs : {16, 64}) {
      auto c = testing::report_config(bs, 0.01, 1);
      c.dataset.clear();
      c.model.clear();
      c.command.argv = {"{python}", "train.py", "--batch-size", "{batch_size}", "--tag", "a b"};
      testing::add_trial(db, id, "", 0, "", c, testing::FakeRun{});
    }
  }
  auto o = options(db_path(), dir / "out");
  o.gnuplot = no_gnuplot();
  const auto r = write_report(o);
  const auto html = read_file(r.html);
  EXPECT_NE(html.find("Program {python} train.py --batch-size {batch_size} --tag &#39;a b&#39; · optimizer sgd"),
            std::string::npos)
      << html.substr(html.find("class=\"meta\""), 300);
  EXPECT_EQ(html.find("Dataset - · model -"), std::string::npos);
}

}  // namespace
}  // namespace powertrain::report
