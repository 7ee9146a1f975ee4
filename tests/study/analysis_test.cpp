#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "powertrain/table/print.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/tables.h"

namespace ps = powertrain::study;
using powertrain::store::TrialStatus;

namespace {

ps::TrialOutcome grid_trial(std::int64_t bs, double lr, std::uint64_t seed, TrialStatus status, int epochs,
                            double energy_j, double metric, double duration_s = 1.0) {
  ps::TrialOutcome t;
  t.batch_size = bs;
  t.learning_rate = lr;
  t.seed = seed;
  t.status = status;
  t.epochs = epochs;
  t.energy_j = energy_j;
  t.metric = metric;
  t.duration_s = duration_s;
  return t;
}

const ps::ConfigSummary& config(const ps::GridAnalysis& g, std::int64_t bs, double lr) {
  for (const auto& c : g.configs)
    if (c.batch_size == bs && c.learning_rate == lr) return c;
  throw std::runtime_error("no such config");
}

// A 2x2 grid, two seeds each. Batch size sets the energy per epoch (small: 10 J,
// large: 4 J); learning rate sets the epochs (low: 8, high: 3).
std::vector<ps::TrialOutcome> grid() {
  using S = TrialStatus;
  return {
      grid_trial(16, 0.001, 0, S::converged, 8, 80, 0.90),  grid_trial(16, 0.001, 1, S::converged, 8, 84, 0.92),
      grid_trial(16, 0.1, 0, S::converged, 3, 30, 0.88),    grid_trial(16, 0.1, 1, S::converged, 3, 30, 0.86),
      grid_trial(256, 0.001, 0, S::max_epochs, 8, 32, 0.80), grid_trial(256, 0.001, 1, S::converged, 8, 32, 0.82),
      grid_trial(256, 0.1, 0, S::converged, 3, 12, 0.85),   grid_trial(256, 0.1, 1, S::diverged, 2, 8, 0.10),
  };
}

}  // namespace

TEST(Describe, MeanSampleSdMinMaxSkippingNaN) {
  const auto s = ps::describe({1.0, 2.0, 3.0, ps::kNaN});
  EXPECT_EQ(s.n, 3);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  EXPECT_DOUBLE_EQ(s.sd, 1.0);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
  const auto one = ps::describe({5.0});
  EXPECT_DOUBLE_EQ(one.sd, 0.0);
  const auto none = ps::describe({});
  EXPECT_EQ(none.n, 0);
  EXPECT_TRUE(std::isnan(none.mean));
  EXPECT_TRUE(std::isnan(none.sd));
}

TEST(Grid, SummariesLeaveDivergedRunsOutOfConvergenceNumbers) {
  const auto g = ps::analyze_grid(grid());
  ASSERT_EQ(g.configs.size(), 4u);
  const auto& c = config(g, 256, 0.1);
  EXPECT_EQ(c.trials, 2);
  EXPECT_EQ(c.results, 2);
  EXPECT_EQ(c.diverged, 1);
  EXPECT_EQ(c.converged, 1);
  EXPECT_EQ(c.energy_j.n, 1);
  EXPECT_DOUBLE_EQ(c.energy_j.mean, 12.0);
  // Energy per epoch counts the diverged run too: (12/3 + 8/2) / 2.
  EXPECT_EQ(c.energy_per_epoch_j.n, 2);
  EXPECT_DOUBLE_EQ(c.energy_per_epoch_j.mean, 4.0);
  const auto& d = config(g, 16, 0.001);
  EXPECT_DOUBLE_EQ(d.energy_j.mean, 82.0);
  EXPECT_NEAR(d.energy_j.sd, std::sqrt(8.0), 1e-12);
  EXPECT_DOUBLE_EQ(d.metric.mean, 0.91);
  EXPECT_EQ(config(g, 256, 0.001).max_epochs, 1);
  EXPECT_EQ(g.trials, 8);
  EXPECT_EQ(g.results, 8);
  EXPECT_EQ(g.diverged, 1);
  // Ordered by batch size, then learning rate.
  EXPECT_EQ(g.configs[0].batch_size, 16);
  EXPECT_DOUBLE_EQ(g.configs[0].learning_rate, 0.001);
  EXPECT_EQ(g.configs[3].batch_size, 256);
  EXPECT_DOUBLE_EQ(g.configs[3].learning_rate, 0.1);
}

TEST(Grid, BestWorstSavingAndRanking) {
  const auto g = ps::analyze_grid(grid());
  ASSERT_TRUE(g.best && g.worst);
  EXPECT_EQ(g.configs[*g.best].batch_size, 256);
  EXPECT_DOUBLE_EQ(g.configs[*g.best].learning_rate, 0.1);
  EXPECT_EQ(g.configs[*g.worst].batch_size, 16);
  EXPECT_DOUBLE_EQ(g.configs[*g.worst].learning_rate, 0.001);
  // The saving compares setups of one quality: within the default 0.01 of the
  // top metric only 16/0.001 qualifies, so there is none to quote.
  EXPECT_EQ(g.qualifying.size(), 1u);
  EXPECT_DOUBLE_EQ(g.saving_pct, 0.0);
  const auto wide = ps::analyze_grid(grid(), 0.05);  // 16/0.1 (0.87, 30 J) qualifies too
  ASSERT_EQ(wide.qualifying.size(), 2u);
  EXPECT_EQ(wide.configs[*wide.costliest_qualifying].batch_size, 16);
  EXPECT_DOUBLE_EQ(wide.saving_pct, (82.0 - 30.0) / 82.0 * 100.0);
  EXPECT_DOUBLE_EQ(wide.worst_over_best, 82.0 / 30.0);
  ASSERT_EQ(g.ranking.size(), 4u);
  std::vector<double> energies;
  for (auto i : g.ranking) energies.push_back(g.configs[i].energy_j.mean);
  EXPECT_EQ(energies, (std::vector<double>{12, 30, 32, 82}));
  EXPECT_TRUE(g.unranked.empty());
}

TEST(Grid, RecommendationIsTheCheapestNearTheTopMetric) {
  // Mean metrics: 16/0.001 0.91 (82 J), 16/0.1 0.87 (30 J), 256/0.001 0.81
  // (32 J), 256/0.1 0.85 (12 J; its diverged seed does not count).
  const auto g = ps::analyze_grid(grid(), 0.05);
  EXPECT_DOUBLE_EQ(g.top_metric, 0.91);
  EXPECT_DOUBLE_EQ(g.metric_tolerance, 0.05);
  ASSERT_TRUE(g.recommended);
  EXPECT_EQ(g.configs[*g.recommended].batch_size, 16);
  EXPECT_DOUBLE_EQ(g.configs[*g.recommended].learning_rate, 0.1);
  EXPECT_EQ(g.configs[*g.best].batch_size, 256);  // the cheapest is still reported as such

  // One point of accuracy (the default): only the most accurate setup qualifies.
  const auto strict = ps::analyze_grid(grid());
  ASSERT_TRUE(strict.recommended);
  EXPECT_EQ(*strict.recommended, *strict.worst);

  // A wide tolerance gives the cheapest.
  const auto loose = ps::analyze_grid(grid(), 1.0);
  EXPECT_EQ(*loose.recommended, *loose.best);
}

TEST(Grid, RecommendationWithoutMetricsIsTheCheapest) {
  using S = TrialStatus;
  const std::vector<ps::TrialOutcome> t{grid_trial(16, 0.1, 0, S::converged, 2, 20, ps::kNaN),
                                        grid_trial(32, 0.1, 0, S::converged, 2, 10, ps::kNaN)};
  const auto g = ps::analyze_grid(t);
  ASSERT_TRUE(g.recommended);
  EXPECT_EQ(g.configs[*g.recommended].batch_size, 32);
  EXPECT_TRUE(std::isnan(g.top_metric));
  EXPECT_FALSE(ps::analyze_grid({}).recommended);
}

TEST(Grid, ConfigurationsWhoseEverySeedDivergedAreUnranked) {
  auto trials = grid();
  trials.push_back(grid_trial(512, 1.0, 0, TrialStatus::diverged, 1, 1.0, 0.1));
  trials.push_back(grid_trial(512, 1.0, 1, TrialStatus::diverged, 1, 1.0, 0.1));
  trials.push_back(grid_trial(512, 0.5, 0, TrialStatus::failed, 0, 0.0, ps::kNaN));
  const auto g = ps::analyze_grid(trials);
  EXPECT_EQ(g.ranking.size(), 4u);
  ASSERT_EQ(g.unranked.size(), 2u);
  // The diverged runs are the cheapest, yet not the best.
  EXPECT_EQ(g.configs[*g.best].batch_size, 256);
  EXPECT_EQ(g.diverged, 3);
  EXPECT_EQ(g.failed, 1);
}

TEST(Grid, TiesGoToTheHigherMetricThenTheShorterTime) {
  using S = TrialStatus;
  const std::vector<ps::TrialOutcome> t{
      grid_trial(16, 0.1, 0, S::converged, 2, 10, 0.80, 5.0),
      grid_trial(32, 0.1, 0, S::converged, 2, 10, 0.90, 9.0),
      grid_trial(64, 0.1, 0, S::converged, 2, 10, 0.90, 7.0),
  };
  const auto configs = ps::summarize_configs(t);
  const auto r = ps::rank_configs(configs);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(configs[r[0]].batch_size, 64);
  EXPECT_EQ(configs[r[1]].batch_size, 32);
  EXPECT_EQ(configs[r[2]].batch_size, 16);
}

TEST(Grid, ParetoFrontOfEnergyAgainstMetric) {
  const auto g = ps::analyze_grid(grid());
  // (12 J, .85), (30 J, .87), (32 J, .81), (82 J, .91): (32, .81) is dominated by (12, .85).
  std::vector<std::pair<double, double>> front;
  for (auto i : g.pareto) front.emplace_back(g.configs[i].energy_j.mean, g.configs[i].metric.mean);
  ASSERT_EQ(front.size(), 3u);
  EXPECT_DOUBLE_EQ(front[0].first, 12.0);
  EXPECT_DOUBLE_EQ(front[1].first, 30.0);
  EXPECT_DOUBLE_EQ(front[2].first, 82.0);
}

TEST(Grid, EffectsSeparateBatchSizeAndLearningRate) {
  const auto g = ps::analyze_grid(grid());
  ASSERT_EQ(g.batch_size.levels.size(), 2u);
  ASSERT_EQ(g.learning_rate.levels.size(), 2u);
  // Batch size 16: 10.25 J/epoch (80/8, 84/8 -> 10.25; 30/3 -> 10) => (10.25 + 10) / 2.
  EXPECT_DOUBLE_EQ(g.batch_size.levels[0].level, 16.0);
  EXPECT_DOUBLE_EQ(g.batch_size.levels[0].energy_per_epoch_j, (10.25 + 10.0) / 2);
  EXPECT_DOUBLE_EQ(g.batch_size.levels[1].energy_per_epoch_j, (4.0 + 4.0) / 2);
  // Learning rate: epochs 8 at 0.001, 3 at 0.1 whatever the batch size.
  EXPECT_DOUBLE_EQ(g.learning_rate.levels[0].epochs, 8.0);
  EXPECT_DOUBLE_EQ(g.learning_rate.levels[1].epochs, 3.0);
  // Batch size moves energy/epoch more than learning rate; learning rate moves epochs more.
  EXPECT_GT(g.batch_size.energy_per_epoch_ratio, g.learning_rate.energy_per_epoch_ratio);
  EXPECT_GT(g.learning_rate.epochs_ratio, g.batch_size.epochs_ratio);
  EXPECT_DOUBLE_EQ(g.learning_rate.epochs_ratio, 8.0 / 3.0);
  EXPECT_DOUBLE_EQ(g.batch_size.epochs_ratio, 1.0);
}

TEST(Grid, PendingAndInterruptedTrialsAddNoNumbers) {
  auto trials = grid();
  trials.push_back(grid_trial(16, 0.1, 2, TrialStatus::interrupted, 1, 999, 0.1));
  trials.push_back(grid_trial(16, 0.1, 3, TrialStatus::pending, 0, 0, ps::kNaN));
  const auto g = ps::analyze_grid(trials);
  const auto& c = config(g, 16, 0.1);
  EXPECT_EQ(c.trials, 4);
  EXPECT_EQ(c.unfinished, 2);
  EXPECT_DOUBLE_EQ(c.energy_j.mean, 30.0);
  EXPECT_EQ(c.energy_per_epoch_j.n, 2);
}

TEST(Grid, EmptyAndSavingEdgeCases) {
  const auto g = ps::analyze_grid({});
  EXPECT_FALSE(g.best);
  EXPECT_TRUE(std::isnan(g.saving_pct));
  EXPECT_TRUE(std::isnan(ps::saving_percent(1.0, 0.0)));
  EXPECT_TRUE(std::isnan(ps::saving_percent(ps::kNaN, 10.0)));
  EXPECT_DOUBLE_EQ(ps::saving_percent(20.0, 100.0), 80.0);
  EXPECT_DOUBLE_EQ(ps::saving_percent(150.0, 100.0), -50.0);
}

// --- pretraining -------------------------------------------------------------------

TEST(BreakEven, Arithmetic) {
  // 1000 J of pretraining, 300 J per task from scratch, 100 J reusing: 5 reuses.
  auto n = ps::break_even_reuses(1000, 300, 100);
  ASSERT_TRUE(n.has_value());
  EXPECT_DOUBLE_EQ(*n, 5.0);
  auto b = ps::break_even("finetune", 1000, 300, 120);
  ASSERT_TRUE(b.pays_off());
  EXPECT_NEAR(*b.reuses, 1000.0 / 180.0, 1e-12);
  EXPECT_EQ(*b.reuses_needed, 6);
  EXPECT_DOUBLE_EQ(b.saving_per_reuse_j, 180.0);
  // Exactly 5 reuses needed, not 6.
  EXPECT_EQ(*ps::break_even("frozen", 1000, 300, 100).reuses_needed, 5);
  // Free pretraining pays off at once.
  EXPECT_DOUBLE_EQ(*ps::break_even_reuses(0, 300, 100), 0.0);
}

TEST(BreakEven, NeverPaysOffWhenReuseSavesNothing) {
  EXPECT_FALSE(ps::break_even_reuses(1000, 300, 300).has_value());
  EXPECT_FALSE(ps::break_even_reuses(1000, 300, 400).has_value());
  EXPECT_FALSE(ps::break_even_reuses(ps::kNaN, 300, 100).has_value());
  const auto b = ps::break_even("finetune", 1000, 300, 400);
  EXPECT_FALSE(b.pays_off());
  EXPECT_FALSE(b.reuses_needed.has_value());
  EXPECT_DOUBLE_EQ(b.saving_per_reuse_j, -100.0);
  const auto t = ps::pretrain_tables(ps::PretrainAnalysis{{}, {}, b, ps::break_even("frozen", 1000, 300, 100)});
  const auto csv = powertrain::table::to_csv(t[1]);
  EXPECT_NE(csv.find("never pays off"), std::string::npos) << csv;
  EXPECT_NE(csv.find("pays off after 5 reuses"), std::string::npos) << csv;
}

namespace {
ps::TrialOutcome phase_trial(const std::string& phase, int step, std::uint64_t seed, double energy, int epochs,
                             double metric, TrialStatus status = TrialStatus::converged) {
  ps::TrialOutcome t;
  t.phase = phase;
  t.step = step;
  t.task = step == 0 ? "source" : "task " + std::to_string(step);
  t.seed = seed;
  t.energy_j = energy;
  t.epochs = epochs;
  t.metric = metric;
  t.status = status;
  return t;
}
}  // namespace

TEST(Pretrain, StepsSavingsAndBreakEvenOverMeanStepEnergies) {
  const std::vector<ps::TrialOutcome> trials{
      phase_trial("pretrain", 0, 0, 900, 9, 0.9), phase_trial("pretrain", 0, 1, 1100, 11, 0.9),
      phase_trial("scratch", 1, 0, 400, 8, 0.8),  phase_trial("finetune", 1, 0, 200, 4, 0.85),
      phase_trial("frozen", 1, 0, 100, 2, 0.7),   phase_trial("scratch", 2, 0, 200, 4, 0.8),
      phase_trial("finetune", 2, 0, 200, 4, 0.8), phase_trial("frozen", 2, 0, 500, 2, 0.7),
      phase_trial("frozen", 2, 1, 0, 1, 0.1, TrialStatus::diverged),
  };
  const auto a = ps::analyze_pretrain(trials);
  EXPECT_DOUBLE_EQ(a.pretrain.energy_j.mean, 1000.0);
  ASSERT_EQ(a.steps.size(), 2u);
  EXPECT_EQ(a.steps[0].step, 1);
  EXPECT_EQ(a.steps[0].task, "task 1");
  EXPECT_DOUBLE_EQ(a.steps[0].finetune_saving_pct, 50.0);
  EXPECT_DOUBLE_EQ(a.steps[0].frozen_saving_pct, 75.0);
  EXPECT_DOUBLE_EQ(a.steps[1].finetune_saving_pct, 0.0);
  EXPECT_DOUBLE_EQ(a.steps[1].frozen_saving_pct, -150.0);
  EXPECT_EQ(a.steps[1].frozen.diverged, 1);
  // Mean scratch 300, finetune 200, frozen 300 per step.
  ASSERT_TRUE(a.finetune.pays_off());
  EXPECT_DOUBLE_EQ(*a.finetune.reuses, 10.0);
  EXPECT_FALSE(a.frozen.pays_off());
  const auto tables = ps::pretrain_tables(a);
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0].rows.size(), 7u);  // pretraining + 2 steps x 3 variants
}

// --- multitask ---------------------------------------------------------------------

TEST(Multitask, SharedModelAgainstSingleTaskModels) {
  auto single = [](const std::string& task, double energy, int epochs, double metric) {
    ps::TrialOutcome t;
    t.phase = "single";
    t.task = task;
    t.energy_j = energy;
    t.epochs = epochs;
    t.metric = metric;
    t.status = TrialStatus::converged;
    return t;
  };
  ps::TrialOutcome multi;
  multi.phase = "multi";
  multi.task = "top,footwear";
  multi.energy_j = 150;
  multi.epochs = 6;
  multi.status = TrialStatus::converged;
  multi.task_metrics = ps::parse_task_metrics_message(ps::task_metrics_message({0.9, 0.97}));
  ASSERT_EQ(multi.task_metrics.size(), 2u);
  const auto a = ps::analyze_multitask({single("footwear", 80, 4, 0.99), single("top", 120, 5, 0.92), multi});
  ASSERT_EQ(a.tasks.size(), 2u);
  EXPECT_EQ(a.tasks[0].task, "top");  // the shared model's order
  EXPECT_DOUBLE_EQ(a.tasks[0].multi_metric.mean, 0.9);
  EXPECT_NEAR(a.tasks[0].metric_delta, -0.02, 1e-12);
  EXPECT_DOUBLE_EQ(a.single_energy_j, 200.0);
  EXPECT_DOUBLE_EQ(a.multi_energy_j, 150.0);
  EXPECT_DOUBLE_EQ(a.saving_pct, 25.0);
  EXPECT_DOUBLE_EQ(a.single_epochs, 9.0);
  EXPECT_DOUBLE_EQ(a.multi_epochs, 6.0);
  EXPECT_NEAR(a.multi_mean_metric, 0.935, 1e-12);
  EXPECT_NEAR(a.single_mean_metric, 0.955, 1e-12);
}

TEST(Multitask, TaskMetricsMessageRoundTrip) {
  EXPECT_EQ(ps::task_metrics_message({0.5, 0.25}), "task_metrics=[0.5,0.25]");
  EXPECT_EQ(ps::parse_task_metrics_message("task_metrics=[0.5,0.25]"), (std::vector<double>{0.5, 0.25}));
  EXPECT_TRUE(ps::parse_task_metrics_message("loss is NaN").empty());
  EXPECT_TRUE(ps::parse_task_metrics_message("task_metrics=[0.5,x]").empty());
}

// --- tables ----------------------------------------------------------------------------

TEST(Tables, OneFieldListDrivesConsoleCsvAndJson) {
  const auto g = ps::analyze_grid(grid());
  const auto tables = ps::grid_tables(g);
  ASSERT_GE(tables.size(), 4u);
  const auto& configs = tables[0];
  EXPECT_EQ(configs.name, "grid_configs");
  EXPECT_EQ(configs.rows.size(), 4u);
  const auto csv = powertrain::table::to_csv(configs);
  const auto header = csv.substr(0, csv.find('\n'));
  EXPECT_NE(header.find("energy_per_epoch_j,energy_per_epoch_j_sd"), std::string::npos) << header;
  EXPECT_NE(header.find("energy_j,energy_j_sd"), std::string::npos) << header;
  const auto json = powertrain::table::to_json(configs);
  ASSERT_EQ(json["rows"].size(), 4u);
  EXPECT_EQ(json["rows"][0]["rank"], 1);
  EXPECT_DOUBLE_EQ(json["rows"][0]["energy_j"].get<double>(), 12.0);
  EXPECT_TRUE(json["rows"][0]["energy_j_sd"].is_null()) << "one usable seed has no spread";
  EXPECT_NEAR(json["rows"][3]["energy_j_sd"].get<double>(), std::sqrt(8.0), 1e-12);
  // The CSV columns are the JSON columns.
  std::string cols;
  for (const auto& c : json["columns"]) cols += (cols.empty() ? "" : ",") + c.get<std::string>();
  EXPECT_EQ(cols, header);
  char* buf = nullptr;
  std::size_t len = 0;
  std::FILE* mem = open_memstream(&buf, &len);
  powertrain::table::print_console(mem, configs);
  std::fclose(mem);
  const std::string console(buf, len);
  free(buf);
  EXPECT_NE(console.find(" 12.0 "), std::string::npos) << console;
  EXPECT_NE(console.find(" 0.001 "), std::string::npos) << "learning rates print exactly: " << console;
  EXPECT_NE(console.find("82.0 ± 2.8"), std::string::npos) << console;
}

TEST(Tables, NaNIsNullInJsonAndEmptyInCsv) {
  using S = TrialStatus;
  const auto tables = ps::grid_tables(ps::analyze_grid({grid_trial(16, 0.1, 0, S::diverged, 1, 5, 0.1)}));
  const auto json = powertrain::table::to_json(tables[0]);
  EXPECT_TRUE(json["rows"][0]["energy_j"].is_null());
  EXPECT_TRUE(json["rows"][0]["rank"].is_null());
  const auto csv = powertrain::table::to_csv(tables[0]);
  EXPECT_NE(csv.find("\n,16,"), std::string::npos) << csv;  // empty rank, then batch size
}

TEST(Tables, EffectRatiosThatCannotBeComputedAreSaidNotPrintedAsNaN) {
  // No trial has a result yet (all pending): no level has a mean, no ratio.
  std::vector<ps::TrialOutcome> one_level;
  for (auto t : grid()) {
    t.status = TrialStatus::pending;
    one_level.push_back(t);
  }
  const auto tables = ps::grid_tables(ps::analyze_grid(one_level));
  bool found = false;
  for (const auto& t : tables)
    for (const auto& n : t.notes)
      if (t.name == "grid_effects") {
        found = true;
        EXPECT_EQ(n.find("nan"), std::string::npos) << n;
        EXPECT_NE(n.find("by an unknown factor"), std::string::npos) << n;
      }
  EXPECT_TRUE(found);
}

namespace {

// Issue 13, interference: the trials table flags trials that ran while other
// processes used a material share of the CPUs, and says what that means.
TEST(TrialsTable, FlagsTrialsThatRanOnABusyMachine) {
  auto busy = grid_trial(32, 0.1, 0, TrialStatus::converged, 3, 90.0, 0.8);
  busy.cpu = powertrain::energy::WindowCpu{40.0, 10.0};  // others 75%
  auto quiet = grid_trial(64, 0.1, 0, TrialStatus::converged, 3, 60.0, 0.8);
  quiet.cpu = powertrain::energy::WindowCpu{10.5, 10.0};
  quiet.quiet_wait_s = 6.0;
  auto unknown = grid_trial(128, 0.1, 0, TrialStatus::converged, 3, 50.0, 0.8);
  const auto t = ps::trials_table({busy, quiet, unknown});
  std::size_t pct = 0, flag = 0;
  for (std::size_t i = 0; i < t.columns.size(); ++i) {
    if (t.columns[i].name == "others_cpu_pct") pct = i;
    if (t.columns[i].name == "interference") flag = i;
  }
  ASSERT_GT(pct, 0u);
  ASSERT_GT(flag, 0u);
  EXPECT_DOUBLE_EQ(std::get<double>(t.rows[0][pct].value), 75.0);
  EXPECT_EQ(std::get<std::string>(t.rows[0][flag].value), "yes");
  EXPECT_EQ(std::get<std::string>(t.rows[1][flag].value), "");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(t.rows[2][pct].value));
  ASSERT_EQ(t.notes.size(), 2u);
  EXPECT_NE(t.notes[0].find("busy: 1 trial ran while other processes used at least 10%"), std::string::npos)
      << t.notes[0];
  EXPECT_NE(t.notes[1].find("1 trial waited 6.0 s in all for a quiet machine"), std::string::npos) << t.notes[1];
  EXPECT_EQ(ps::interference_count({busy, quiet, unknown}), 1u);
  EXPECT_TRUE(ps::trials_table({quiet}).notes.size() == 1u);  // only the wait
}

}  // namespace

namespace {

// Issue 16: trials a Slurm task ran on a shared node are said to be; where the
// cluster accounts energy, its figure stands beside powertrain's.
TEST(TrialsTable, SaysWhichTrialsRanOnSharedNodesAndComparesTheClustersEnergy) {
  auto a = grid_trial(32, 0.1, 0, TrialStatus::converged, 3, 100.0, 0.8);
  a.placement = "Slurm job 7_0 on n1, a node shared with other jobs (node-wide energy includes their work)";
  a.slurm_job = "7_0";
  a.cluster_energy_j = 150.0;
  auto b = grid_trial(64, 0.1, 0, TrialStatus::converged, 3, 80.0, 0.8);
  b.placement = "Slurm job 7_1 on n2, a whole node";
  b.slurm_job = "7_1";
  const auto t = ps::trials_table({a, b});
  ASSERT_EQ(t.notes.size(), 1u);
  EXPECT_NE(t.notes[0].find("1 trial ran on Slurm nodes shared with other jobs"), std::string::npos) << t.notes[0];

  const auto c = ps::cluster_energy_table({a, b});
  ASSERT_TRUE(c.has_value());
  ASSERT_EQ(c->rows.size(), 1u);  // b has no cluster figure
  std::size_t ratio = 0;
  for (std::size_t i = 0; i < c->columns.size(); ++i)
    if (c->columns[i].name == "cluster_over_powertrain") ratio = i;
  ASSERT_GT(ratio, 0u);
  EXPECT_DOUBLE_EQ(std::get<double>(c->rows[0][ratio].value), 1.5);
  EXPECT_FALSE(ps::cluster_energy_table({b}).has_value());
}

}  // namespace

namespace {

// Issue 15: the forecasts made during the runs against what the runs cost.
TEST(PredictionTable, ComparesTheRecordedForecastsWithTheOutcome) {
  auto t = grid_trial(32, 0.1, 0, TrialStatus::converged, 8, 80.0, 0.8);
  t.config.max_epochs = 20;
  t.config.patience = 2;
  t.config.min_delta = 0.01;
  const double metrics[] = {0.5, 0.6, 0.7, 0.75, 0.78, 0.79, 0.79, 0.79};
  for (int e = 1; e <= 8; ++e) {
    powertrain::run::EpochRecord r;
    r.epoch = e;
    r.val_metric = metrics[e - 1];
    r.energy_j = 10.0;
    if (e == 4) {  // the one recorded with the run: used as it is
      powertrain::run::EpochForecast f;
      f.method = "curve-ensemble";
      f.energy_low_j = 70;
      f.energy_j = 88;
      f.energy_high_j = 100;
      r.forecast = f;
    }
    t.epoch_records.push_back(r);
  }
  auto short_run = grid_trial(64, 0.1, 0, TrialStatus::converged, 1, 10.0, 0.5);  // one epoch: nothing to predict
  const auto table = ps::prediction_table({t, short_run});
  ASSERT_TRUE(table.has_value());
  ASSERT_EQ(table->rows.size(), 1u);
  auto col = [&](const std::string& name) {
    for (std::size_t i = 0; i < table->columns.size(); ++i)
      if (table->columns[i].name == name) return i;
    throw std::runtime_error("no column " + name);
  };
  const auto& row = table->rows[0];
  EXPECT_EQ(std::get<std::int64_t>(row[col("seen_25")].value), 2);
  EXPECT_EQ(std::get<std::int64_t>(row[col("seen_50")].value), 4);
  EXPECT_DOUBLE_EQ(std::get<double>(row[col("predicted_50_j")].value), 88.0);
  EXPECT_DOUBLE_EQ(std::get<double>(row[col("error_50_pct")].value), 10.0);
  EXPECT_EQ(std::get<std::string>(row[col("method_50")].value), "curve-ensemble");
  ASSERT_FALSE(table->notes.empty());
  EXPECT_NE(table->notes[0].find("1 finished runs"), std::string::npos) << table->notes[0];
  EXPECT_NE(table->notes[0].find("CarbonTracker's linear rule"), std::string::npos);
  EXPECT_FALSE(ps::prediction_table({short_run}).has_value());
}

}  // namespace

namespace {

// Issue 15: with a target metric, the objective is the energy to reach it;
// setups that did not reach it in every seed are not compared.
TEST(Grid, WithATargetOnlySetupsThatReachedItAreComparedByEnergyToTarget) {
  using S = TrialStatus;
  auto reach = [](ps::TrialOutcome t, double to_target) {
    t.energy_to_target_j = to_target;
    return t;
  };
  const std::vector<ps::TrialOutcome> trials{
      reach(grid_trial(16, 0.001, 0, S::converged, 8, 80, 0.90), 60),
      reach(grid_trial(16, 0.001, 1, S::converged, 8, 84, 0.92), 64),
      reach(grid_trial(16, 0.1, 0, S::converged, 3, 30, 0.88), 20),
      grid_trial(16, 0.1, 1, S::converged, 3, 30, 0.80),  // one seed fell short: 16/0.1 does not qualify
      reach(grid_trial(256, 0.1, 0, S::converged, 4, 40, 0.86), 36),
      reach(grid_trial(256, 0.1, 1, S::converged, 4, 40, 0.87), 38),
      grid_trial(512, 0.1, 0, S::converged, 2, 5, 0.31),  // the cheapest, far below the target
  };
  const auto g = ps::analyze_grid(trials, 0.01, 0.85);
  ASSERT_TRUE(g.recommended);
  EXPECT_EQ(g.configs[*g.recommended].batch_size, 256);  // 37 J to the target against 62 J
  ASSERT_EQ(g.qualifying.size(), 2u);
  EXPECT_DOUBLE_EQ(g.objective_j(*g.recommended), 37.0);
  EXPECT_DOUBLE_EQ(g.saving_pct, (62.0 - 37.0) / 62.0 * 100.0);
  EXPECT_EQ(g.configs[*g.best].batch_size, 512);  // cheapest of any quality, reported as such only
  const auto tables = ps::grid_tables(g);
  const auto& notes = tables.back().notes;
  ASSERT_GE(notes.size(), 2u);
  EXPECT_NE(notes[0].find("of the 2 setups that reached the target metric 0.85"), std::string::npos) << notes[0];
  EXPECT_NE(notes[1].find("stopped at a metric of 0.3100: it is not compared"), std::string::npos) << notes[1];

  auto unreached = trials;
  for (auto& t : unreached) t.energy_to_target_j.reset();
  const auto none = ps::analyze_grid(unreached, 0.01, 0.85);
  EXPECT_FALSE(none.recommended);
  EXPECT_TRUE(std::isnan(none.saving_pct));
}

}  // namespace
