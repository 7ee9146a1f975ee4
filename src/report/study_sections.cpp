// Sections of the studies of a kind without a section of its own, and of the
// runs outside studies; the tables and figures of a section. The built-in
// kinds' sections are in grid_section.cpp, pretrain_section.cpp,
// multitask_section.cpp and search_section.cpp.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "powertrain/study/plan.h"
#include "powertrain/study/search_view.h"
#include "section_parts.h"

namespace powertrain::report {

using namespace detail;

namespace {

table::Table runs_table(const std::string& name, const std::string& caption, const std::vector<const RunData*>& runs,
                     const energy::CarbonOptions& carbon) {
  table::Table t;
  t.name = name;
  t.title = caption;
  t.columns = table::headed({"run", "dataset", "model", "batch size", "learning rate", "status", "epochs", "energy (J)", "time (s)",
              "best val metric", "test metric", "CO2e (g)", "method", "started"});
  for (const auto* r : runs) {
    const auto& s = r->run.summary;
    t.rows.push_back({Cell::number(std::to_string(r->run.id)), r->run.config.dataset, r->run.config.model,
                      Cell::number(std::to_string(r->run.config.batch_size)), Cell::number(lr_text(r->run.config.learning_rate)),
                      std::string(run::to_string(s.status)), Cell::number(std::to_string(s.epochs)),
                      Cell::number(format_number(s.energy_j)), Cell::number(format_number(s.duration_s)),
                      Cell::number(format_number(s.best_val_metric)), Cell::number(format_number(s.test_metric)),
                      Cell::number(grams_co2(s.energy_j, carbon)), method_cell(s.method), Cell(format_time(r->run.started_at)).with_mark("nowrap")});
  }
  return t;
}

}  // namespace

BuiltSection study_tables_section(const StudyData& s, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = section_id(s);
  sec.title = s.study.name;
  sec.kind = fmt::format("{} study", s.study.kind);
  sec.blocks.push_back(Block::markup(study_meta(s)));
  const auto outcomes = outcomes_with_epochs(s);
  for (const auto& t : study::study_tables(s.study, outcomes)) {
    sec.blocks.push_back(Block::of(html_of(t, study_prefix(s) + "-" + t.name)));
    for (const auto& note : t.notes) sec.blocks.push_back(paragraph(note));
  }
  const auto runs = runs_of(s);
  sec.blocks.push_back(Block::of(runs_table(study_prefix(s) + "-runs", "Runs of the study", runs, ctx.carbon)));
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, runs, runs.empty() ? nullptr : runs.front(), "the first run", study_prefix(s), ctx);
  return out;
}

BuiltSection other_runs_section(const std::vector<RunData>& runs, const SectionContext& ctx) {
  BuiltSection out;
  auto& sec = out.section;
  sec.id = "runs";
  sec.title = "Runs outside studies";
  sec.kind = "runs";
  std::vector<const RunData*> ptrs;
  for (const auto& r : runs) ptrs.push_back(&r);
  sec.blocks.push_back(paragraph(
      "Runs of powertrain train, and earlier attempts of study trials (a trial keeps only its latest run)."));
  sec.blocks.push_back(Block::of(runs_table("runs", "Runs", ptrs, ctx.carbon)));
  sec.blocks.push_back(Block::markup("<h3>Power over time</h3>"));
  add_timelines(out, ptrs, ptrs.empty() ? nullptr : ptrs.back(), "the latest run", "runs", ctx);
  return out;
}

std::vector<table::Table> tables_of(const Section& s) {
  std::vector<table::Table> out;
  for (const auto& b : s.blocks)
    if (b.kind == Block::Kind::table) out.push_back(b.table);
  return out;
}

std::vector<Figure> figures_of(const Section& s) {
  std::vector<Figure> out;
  for (const auto& b : s.blocks)
    if (b.kind == Block::Kind::figure) out.push_back(b.figure);
  return out;
}

}  // namespace powertrain::report
