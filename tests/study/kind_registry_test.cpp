// A study kind is one descriptor plus its registration: a kind defined only in
// this test (a learning-rate sweep at the workload's batch size) reads its own
// table, plans its trials and gives its table through the same paths as the
// built-in kinds (parse_spec, plan_trials, planned_trial_count,
// plan_fingerprint, study_tables and the table printers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/table/print.h"
#include "powertrain/error.h"
#include "powertrain/study/kind.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"
#include "powertrain/study/spec_reader.h"
#include "powertrain/study/tables.h"

namespace ps = powertrain::study;
namespace store = powertrain::store;

namespace {

constexpr const char* kKind = "rate-sweep";
constexpr const char* kPhase = "rate";

// The kind's own settings, kept in StudySpec::kind_settings.
struct RateSweep {
  std::vector<double> learning_rates;
};

const RateSweep& settings(const ps::StudySpec& s) { return ps::settings_of<RateSweep>(s); }

// Mean energy per learning rate over the seeds that finished.
struct RateRow {
  double learning_rate = 0.0;
  ps::Stat energy_j;
};

ps::StudyKindInfo rate_sweep_kind() {
  ps::StudyKindInfo k;
  k.name = kKind;
  k.help = "Learning rates at the workload's batch size (a test's kind)";
  k.tables = {"rates"};
  k.parse = [](ps::KindParse& kp) {
    const auto* table = kp.top.table("rates");
    if (!table) kp.parser.fail(nullptr, "a rate-sweep study needs a [rates] table");
    ps::detail::Table t(kp.parser, *table, "rates");
    RateSweep r;
    r.learning_rates = t.numbers("learning_rates").value_or(std::vector<double>{});
    if (r.learning_rates.empty()) kp.parser.fail(table, "'rates.learning_rates' must not be empty");
    t.finish({});
    kp.spec.kind_settings = r;
  };
  k.planned_count = [](const ps::StudySpec& s) {
    return static_cast<std::int64_t>(s.seeds.size() * settings(s).learning_rates.size());
  };
  k.plan = [](const ps::StudySpec& s) {
    std::vector<ps::PlannedTrial> plan;
    for (auto seed : s.seeds)
      for (double lr : settings(s).learning_rates) {
        auto c = s.base;
        c.seed = seed;
        c.learning_rate = lr;
        plan.push_back(ps::make_trial(s, c, kPhase, 0, "", {}, fmt::format("lr={:g} seed={}", lr, seed)));
      }
    return plan;
  };
  k.tables_of = [](const store::Study&, const std::vector<ps::TrialOutcome>& trials) {
    std::map<double, std::vector<double>> energy;
    for (const auto& t : trials)
      if (t.usable()) energy[t.learning_rate].push_back(t.energy_j);
    std::vector<RateRow> rows;
    for (const auto& [lr, e] : energy) rows.push_back({lr, ps::describe(e)});
    const std::vector<ps::Field<RateRow>> fields = {
        {{"learning_rate", "lr", 0, false}, [](const RateRow& r) { return ps::Cell{ps::real(r.learning_rate), {}}; }},
        {{"energy_j", "energy J", 3, true}, [](const RateRow& r) { return ps::stat_cell(r.energy_j); }},
    };
    return std::vector<powertrain::table::Table>{ps::make_table("rate_energy", "Energy per learning rate", fields, rows)};
  };
  return k;
}

// The test's kind is registered for one test at a time, so that the other
// suites of this binary see the built-in kinds alone.
class StudyKinds : public ::testing::Test {
 protected:
  void SetUp() override { ps::register_study_kind(rate_sweep_kind()); }
  void TearDown() override { EXPECT_TRUE(ps::unregister_study_kind(kKind)); }
};

const char* kSpec = R"(kind = "rate-sweep"
seeds = [0, 1]
[workload]
dataset = "synthetic-images"
[rates]
learning_rates = [0.1, 0.01, 0.001]
)";

ps::TrialOutcome finished(double lr, std::uint64_t seed, double energy_j) {
  ps::TrialOutcome t;
  t.key = fmt::format("{}-{}", lr, seed);
  t.phase = kPhase;
  t.learning_rate = lr;
  t.batch_size = 64;
  t.seed = seed;
  t.status = store::TrialStatus::converged;
  t.epochs = 2;
  t.energy_j = energy_j;
  t.metric = 0.5;
  return t;
}

std::string error_of(const std::string& text) {
  try {
    ps::parse_spec(text, "spec.toml");
  } catch (const powertrain::ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(StudyKindList, TheBuiltInKindsAreRegisteredInOrder) {
  std::vector<std::string> names;
  for (const auto* k : ps::study_kinds()) names.push_back(k->name);
  ASSERT_GE(names.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4),
            (std::vector<std::string>{"grid", "pretrain", "multitask", "search"}));
  EXPECT_EQ(ps::find_study_kind("train"), nullptr) << "the unused train kind is gone";
  EXPECT_EQ(ps::find_study_kind("rate-sweep"), nullptr) << "the test's kind is registered only in its tests";
  EXPECT_THROW(ps::study_kind("train"), powertrain::ConfigError);
}

TEST_F(StudyKinds, ANewKindIsParsedPlannedAndTabulatedThroughTheCommonPaths) {
  const auto spec = ps::parse_spec(kSpec, "sweep.toml");
  EXPECT_EQ(spec.kind, kKind);
  EXPECT_EQ(settings(spec).learning_rates, (std::vector<double>{0.1, 0.01, 0.001}));

  const auto plan = ps::plan_trials(spec);
  ASSERT_EQ(plan.size(), 6u);
  EXPECT_EQ(ps::planned_trial_count(spec), 6);
  EXPECT_EQ(plan[0].label, "lr=0.1 seed=0");
  EXPECT_EQ(plan[4].label, "lr=0.01 seed=1");
  EXPECT_DOUBLE_EQ(plan[2].spec.config.learning_rate, 0.001);
  EXPECT_EQ(plan[3].spec.config.seed, 1u);
  EXPECT_EQ(plan[0].spec.phase, kPhase);
  const auto fingerprint = nlohmann::json::parse(ps::plan_fingerprint(spec));
  EXPECT_EQ(fingerprint["kind"], kKind);
  EXPECT_EQ(fingerprint["trials"].size(), 6u);

  store::Study study;
  study.name = "sweep";
  study.kind = kKind;
  study.spec = kSpec;
  const std::vector<ps::TrialOutcome> trials = {finished(0.1, 0, 10.0), finished(0.1, 1, 14.0),
                                                finished(0.01, 0, 30.0)};
  const auto tables = ps::study_tables(study, trials);
  ASSERT_GE(tables.size(), 2u);
  EXPECT_EQ(tables[0].name, "trials");
  const auto& mine = tables[1];
  EXPECT_EQ(mine.name, "rate_energy");
  EXPECT_EQ(powertrain::table::to_csv(mine), "learning_rate,energy_j,energy_j_sd\n0.01,30,\n0.1,12,2.8284271247461903\n");
  EXPECT_EQ(powertrain::table::to_json(mine)["rows"][1]["energy_j"], 12.0);
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  powertrain::table::print_console(f, mine);
  std::rewind(f);
  std::string console(4096, '\0');
  console.resize(std::fread(console.data(), 1, console.size(), f));
  std::fclose(f);
  EXPECT_NE(console.find("Energy per learning rate"), std::string::npos) << console;
  EXPECT_NE(console.find("0.1  12.0 ± 2.8"), std::string::npos) << console;
}

TEST_F(StudyKinds, ANewKindsTableIsItsOwn) {
  // Its table in a grid spec, and a grid's table in its spec, are refused as the built-in kinds' are.
  EXPECT_EQ(error_of("kind = \"grid\"\n[rates]\nlearning_rates = [0.1]\n"),
            "spec.toml:2: key 'rates' is not used here (a grid study)");
  EXPECT_EQ(error_of(std::string(kSpec) + "[grid]\nbatch_sizes = [8]\n"),
            "spec.toml:7: key 'grid' is not used here (a rate-sweep study)");
  EXPECT_EQ(error_of("kind = \"rate-sweep\"\n[rates]\nlearning_rates = [0.1]\nbatch = 2\n"),
            "spec.toml:4: unknown key 'rates.batch' (valid here: learning_rates)");
  EXPECT_EQ(error_of("kind = \"sweep\"\n"),
            "spec.toml:1: 'kind' must be grid, pretrain, multitask, search or rate-sweep, got 'sweep'");
}

TEST_F(StudyKinds, RegisteringANameTwiceOrWithoutItsFunctionsIsRefused) {
  EXPECT_THROW(ps::register_study_kind(rate_sweep_kind()), std::invalid_argument);
  EXPECT_THROW(ps::register_study_kind(ps::grid_kind()), std::invalid_argument);
  ps::StudyKindInfo bare;
  bare.name = "bare";
  EXPECT_THROW(ps::register_study_kind(bare), std::invalid_argument);
  EXPECT_EQ(ps::find_study_kind("bare"), nullptr);
}

// A stored grid whose spec no longer reads keeps its tables with the default
// objective, and says so under the first one instead of passing over it.
TEST(StudyKindList, AGridWhoseStoredSpecNoLongerReadsSaysSoInItsTables) {
  store::Study study;
  study.name = "old";
  study.kind = "grid";
  study.spec = "[grid]\nbatch_sizes = [8]\nretired_key = 1\n";
  std::vector<ps::TrialOutcome> trials = {finished(0.1, 0, 10.0)};
  trials[0].phase = "";
  const auto tables = ps::study_tables(study, trials);
  ASSERT_GE(tables.size(), 2u);
  EXPECT_EQ(tables[1].name, "grid_configs");
  ASSERT_FALSE(tables[1].notes.empty());
  EXPECT_EQ(tables[1].notes.back(),
            "The stored specification no longer reads (<stored spec>:3: unknown key 'grid.retired_key' (valid here: "
            "batch_sizes, learning_rates, metric_tolerance)): the default metric tolerance (0.01) and no target metric "
            "were used.");
  std::string problem;
  study.spec = "[grid]\nbatch_sizes = [8]\n[training]\ntarget_metric = 0.5\n";
  const auto [tolerance, target] = ps::grid_objective(study, &problem);
  EXPECT_EQ(problem, "");
  EXPECT_EQ(target, 0.5);
  EXPECT_DOUBLE_EQ(tolerance, 0.01);
}
