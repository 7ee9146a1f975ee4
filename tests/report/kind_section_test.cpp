// The report's section of a study kind without a section of its own (one
// registered here, in the test) shows that kind's tables, through the same
// study_tables the console and the CSV/JSON exports print.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "powertrain/table/print.h"
#include "powertrain/report/sections.h"
#include "powertrain/study/kind.h"

namespace pr = powertrain::report;
namespace ps = powertrain::study;
namespace store = powertrain::store;

namespace {

constexpr const char* kKind = "trial-count";

// A kind whose one table counts the study's trials by status.
ps::StudyKindInfo trial_count_kind() {
  ps::StudyKindInfo k;
  k.name = kKind;
  k.help = "Counts trials (a test's kind)";
  k.parse = [](ps::KindParse&) {};
  k.planned_count = [](const ps::StudySpec&) { return std::int64_t{0}; };
  k.plan = [](const ps::StudySpec&) { return std::vector<ps::PlannedTrial>{}; };
  k.tables_of = [](const store::Study&, const std::vector<ps::TrialOutcome>& trials) {
    struct Row {
      std::string status;
      std::int64_t trials = 0;
    };
    std::vector<Row> rows;
    for (const auto& t : trials) {
      const std::string status(store::to_string(t.status));
      auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.status == status; });
      if (it == rows.end()) rows.push_back({status, 1});
      else ++it->trials;
    }
    const std::vector<ps::Field<Row>> fields = {
        {{"status", "status", 0, false}, [](const Row& r) { return ps::Cell{r.status, {}}; }},
        {{"trials", "trials", 0, false}, [](const Row& r) { return ps::Cell{r.trials, {}}; }},
    };
    auto t = ps::make_table("trial_counts", "Trials by status", fields, rows);
    t.notes.push_back("counted by the test's kind");
    return std::vector<powertrain::table::Table>{t};
  };
  return k;
}

class KindSection : public ::testing::Test {
 protected:
  void SetUp() override { ps::register_study_kind(trial_count_kind()); }
  void TearDown() override { EXPECT_TRUE(ps::unregister_study_kind(kKind)); }
};

store::TrialResult trial(const std::string& key, store::TrialStatus status) {
  store::TrialResult r;
  r.trial.key = key;
  r.trial.status = status;
  return r;
}

}  // namespace

TEST_F(KindSection, AKindWithoutItsOwnSectionShowsItsTables) {
  EXPECT_EQ(pr::section_builder("grid"), &pr::grid_section);
  EXPECT_EQ(pr::section_builder("search"), &pr::search_section);
  EXPECT_EQ(pr::section_builder(kKind), &pr::study_tables_section);

  pr::StudyData s;
  s.study.id = 7;
  s.study.name = "counted";
  s.study.kind = kKind;
  s.trials = {trial("a", store::TrialStatus::pending), trial("b", store::TrialStatus::failed),
              trial("c", store::TrialStatus::pending)};
  const auto built = pr::section_builder(s.study.kind)(s, pr::SectionContext{});
  EXPECT_EQ(built.section.kind, "trial-count study");
  EXPECT_EQ(built.section.title, "counted");
  const auto tables = pr::tables_of(built.section);
  const auto mine = std::find_if(tables.begin(), tables.end(),
                                 [](const powertrain::table::Table& t) { return t.name == "study7-trial_counts"; });
  ASSERT_NE(mine, tables.end());
  EXPECT_EQ(mine->title, "Trials by status");
  ASSERT_EQ(mine->columns.size(), 2u);
  EXPECT_EQ(mine->columns[0].header, "status");
  EXPECT_EQ(mine->columns[1].header, "trials");
  ASSERT_EQ(mine->rows.size(), 2u);
  const auto shown = [&](std::size_t r, std::size_t c) { return powertrain::table::cell_text(mine->rows[r][c], mine->columns[c]); };
  EXPECT_EQ(shown(0, 0), "pending");
  EXPECT_EQ(shown(0, 1), "2");
  EXPECT_TRUE(powertrain::table::is_numeric(mine->rows[0][1]));
  EXPECT_EQ(shown(1, 0), "failed");
  EXPECT_EQ(shown(1, 1), "1");
  // The trials table every study has comes first, as on the console.
  EXPECT_TRUE(
      std::any_of(tables.begin(), tables.end(), [](const powertrain::table::Table& t) { return t.name == "study7-trials"; }));
  const auto note = std::find_if(built.section.blocks.begin(), built.section.blocks.end(), [](const pr::Block& b) {
    return b.kind == pr::Block::Kind::html && b.html.find("counted by the test") != std::string::npos;
  });
  EXPECT_NE(note, built.section.blocks.end());
}
