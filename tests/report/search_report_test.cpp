// The report's section of a search: a search study written segment by segment
// through the Store API (the report layer links no runner), its segments
// planned by search::decide as `powertrain search` plans them, with curves
// made up so that the search's verdicts are known.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "powertrain/report/report.h"
#include "powertrain/search/search.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "report_fixtures.h"
#include "temp_dir.h"

namespace powertrain::report {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;

// 4 setups, rungs ending at epochs 1, 2 and 4 (eta 2), target 0.9.
constexpr const char* kSpec = R"(name = "tiny-search"
kind = "search"
[workload]
dataset = "synthetic-images"
[training]
max_epochs = 4
target_metric = 0.9
threads = 1
[search]
batch_sizes = [16, 64]
learning_rates = [0.01, 0.1]
min_epochs = 1
eta = 2
)";

// What each setup would do, epoch by epoch: validation metrics 1..4 and the
// energy of one epoch (batch size 64 costs half of 16). Ranked on predicted
// energy to the target after epoch 1, (64, 0.1) and (64, 0.01) go on and the
// 16s stop; after epoch 2 (64, 0.01) stops; (64, 0.1) reaches 0.9 at epoch 3
// with 3 x 10 J. Segments: 4 + 2 + 1; energy 60 + 20 + 20 = 100 J.
struct Curve {
  std::vector<double> metric;
  double epoch_j = 0.0;
};
Curve curve_of(const search::Setup& s) {
  const bool big = s.batch_size == 64;
  const bool fast = s.learning_rate == 0.1;
  Curve c;
  c.epoch_j = big ? 10.0 : 20.0;
  if (big && fast) c.metric = {0.6, 0.8, 0.92, 0.95};
  if (big && !fast) c.metric = {0.3, 0.5, 0.6, 0.7};
  if (!big && fast) c.metric = {0.55, 0.75, 0.85, 0.9};
  if (!big && !fast) c.metric = {0.2, 0.3, 0.4, 0.5};
  return c;
}

// Runs the search to its end as the runner would: decide, write the segments
// it asks for (epochs from_epoch..to_epoch, continuing the setup), decide again.
std::int64_t add_search_study(store::Store& db) {
  const auto spec = study::parse_spec(kSpec, "search.toml");
  const auto env = testing::report_environment();
  const auto id = db.create_study(spec.name, "search", spec.text, env);
  const auto setups = study::search_setups(spec);
  for (int round = 0; round < 20; ++round) {
    const auto d = search::decide(spec.search, setups, study::observe_search(db, id, spec), 0.0);
    if (d.finished) return id;
    for (const auto& seg : d.next) {
      const auto trial = study::segment_trial(spec, seg);
      const auto t = db.upsert_trial(id, trial.spec);
      const auto run = db.start_trial(t, trial.spec.config, env);
      const auto c = curve_of(seg.setup);
      run::RunSummary sum;
      for (int e = seg.from_epoch; e <= seg.to_epoch; ++e) {
        run::EpochRecord r;
        r.epoch = e;
        r.duration_s = 1.0;
        r.energy_j = c.epoch_j;
        r.method = "estimated";
        r.val_metric = c.metric[static_cast<std::size_t>(e - 1)];
        db.add_epoch(run, r);
        sum.energy_j += r.energy_j;
        sum.duration_s += r.duration_s;
        sum.best_val_metric = std::max(sum.best_val_metric, r.val_metric);
        ++sum.epochs;
      }
      // A segment ends at its rung's last epoch: paused, or at the epoch limit.
      sum.status = run::RunStatus::max_epochs;
      sum.best_epoch = seg.to_epoch;
      sum.test_metric = sum.best_val_metric;
      sum.method = "estimated";
      db.complete_trial(t, sum);
    }
  }
  ADD_FAILURE() << "the search did not finish";
  return id;
}

ReportOptions options(const fs::path& db, const fs::path& out, bool gnuplot) {
  ReportOptions o;
  o.db = db;
  o.out_dir = out;
  o.gnuplot = gnuplot ? GnuplotLocation{fs::path("/usr/bin/gnuplot"), ""}
                      : GnuplotLocation{std::nullopt, "gnuplot not found (test)"};
  return o;
}

// Data files of a figure ("<name>.<data>") whose data name starts with `prefix`.
std::vector<fs::path> data_files(const fs::path& figures, const std::string& figure, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(figures)) {
    const auto name = e.path().filename().string();
    if (name.starts_with(figure + "." + prefix)) out.push_back(e.path());
  }
  return out;
}

int rows_of(const std::string& data) {
  int n = 0;
  std::size_t at = 0;
  while ((at = data.find('\n', at)) != std::string::npos) {
    ++at;
    ++n;
  }
  return n - 1;  // the header comment
}

class SearchReport : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = store::Store::open(db_path(), {std::chrono::milliseconds(5000), store::Durability::normal});
    add_search_study(db);
  }
  fs::path db_path() const { return dir / "results.db"; }
  TempDir dir;
};

TEST_F(SearchReport, HeadlineTablesAndOneCurvePerStartedSetup) {
  if (!fs::exists("/usr/bin/gnuplot")) GTEST_SKIP() << "gnuplot is not installed";
  const auto r = write_report(options(db_path(), dir / "out", true));
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();
  EXPECT_EQ(r.figures_drawn, r.figures_planned);
  const auto html = read_file(r.html);
  EXPECT_NE(html.find("<section id=\"study-1\""), std::string::npos) << "the search has its section";
  EXPECT_NE(html.find("search study"), std::string::npos);
  // The choice, its measured energy to the target, and what the search cost.
  EXPECT_NE(html.find("Use bs=64 lr=0.1: it reached the target validation metric 0.9 for the least energy: 30 J "
                      "(estimated) to the target, measured when it reached it at epoch 3 (not predicted); its best "
                      "validation metric is 0.95."),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("The search used 100 J (estimated) over its 7 segments (each segment&#39;s latest run); it "
                      "started 4 of its 4 setups, continued 2 past their first rung and stopped 3 early."),
            std::string::npos);
  EXPECT_NE(html.find("Setups of the search"), std::string::npos);
  EXPECT_NE(html.find("The search&#39;s choice"), std::string::npos);
  for (const char* t : {"study1-search-setups", "study1-search-choice", "study1-trials"})
    EXPECT_TRUE(fs::exists(dir / "out" / "tables" / (std::string(t) + ".csv"))) << t;
  EXPECT_NE(read_file(dir / "out" / "tables" / "study1-search-choice.csv").find("bs=64 lr=0.1"), std::string::npos);

  // The figure: drawn, inlined, one data file per started setup with its
  // epochs, the stopped ones marked, the chosen one highlighted, the target drawn.
  const auto figures = dir / "out" / "figures";
  for (const char* ext : {".svg", ".png"}) {
    const auto p = figures / (std::string("study1-curves") + ext);
    ASSERT_TRUE(fs::exists(p)) << p;
    EXPECT_GT(fs::file_size(p), 1000u) << p;
  }
  EXPECT_NE(html.find("<figure id=\"fig-study1-curves\">"), std::string::npos);
  const auto lines = data_files(figures, "study1-curves", "line");
  ASSERT_EQ(lines.size(), 4u) << "one series per started setup";
  std::map<int, int> by_rows;  // epochs -> setups
  for (const auto& l : lines) ++by_rows[rows_of(read_file(l))];
  // Stopped after epoch 1 (two), after epoch 2 (one), the chosen one ran all 4.
  EXPECT_EQ(by_rows, (std::map<int, int>{{1, 2}, {2, 1}, {4, 1}}));
  EXPECT_EQ(rows_of(read_file(figures / "study1-curves.stopped")), 3);
  const auto gp = read_file(figures / "study1-curves.gp");
  EXPECT_NE(gp.find("'bs=64 lr=0.1 (chosen)'"), std::string::npos);
  EXPECT_NE(gp.find("(stopped)'"), std::string::npos);
  EXPECT_NE(gp.find("'stopped here'"), std::string::npos);
  EXPECT_NE(gp.find("'target 0.9'"), std::string::npos);
  EXPECT_NE(gp.find("set xlabel 'cumulative energy (J) (estimated)'"), std::string::npos);
  // The chosen setup's line ends at 40 J (4 epochs of 10 J) with 0.95.
  bool chosen_curve = false;
  for (const auto& l : lines) chosen_curve = chosen_curve || read_file(l).ends_with("40 0.95\n");
  EXPECT_TRUE(chosen_curve);
}

TEST_F(SearchReport, WithoutGnuplotTheSectionKeepsItsTextAndTables) {
  const auto r = write_report(options(db_path(), dir / "out", false));
  EXPECT_FALSE(r.gnuplot_found);
  EXPECT_EQ(r.figures_drawn, 0);
  const auto html = read_file(r.html);
  EXPECT_NE(html.find("Use bs=64 lr=0.1"), std::string::npos);
  EXPECT_NE(html.find("<figure id=\"fig-study1-curves\">"), std::string::npos);
  EXPECT_NE(html.find("Figure not drawn: gnuplot not found (test)"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "out" / "tables" / "study1-search-setups.csv"));
}

}  // namespace
}  // namespace powertrain::report
