#pragma once
// The page's sections, one builder per kind of study, each a pure function of
// the loaded data. Numbers come from the study analyses (powertrain/study/analysis.h).
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/energy/carbon.h"
#include "powertrain/report/data.h"
#include "powertrain/report/figures.h"
#include "powertrain/report/page.h"

namespace powertrain::report {

/// What every section builder needs besides its data.
struct SectionContext {
  energy::CarbonOptions carbon;  ///< validated
  std::size_t max_timeline_points = 1500;
  std::size_t max_inline_timelines = 40;
};

/// A section and the figures and tables it shows (figures it only writes to
/// figures/ are in `extra_figures`).
struct BuiltSection {
  Section section;
  std::vector<Figure> extra_figures;
};

/// Grid study: heatmaps, energy-metric Pareto front, ranking, factor effects,
/// recommendation, timelines.
BuiltSection grid_section(const StudyData& s, const SectionContext& ctx);
/// Pretraining study: cumulative energy over reuses with break-even points.
BuiltSection pretrain_section(const StudyData& s, const SectionContext& ctx);
/// Multitask study: shared model against the single-task models.
BuiltSection multitask_section(const StudyData& s, const SectionContext& ctx);
/// Search: its choice and what finding it cost, every started setup's
/// validation metric against its cumulative energy, the search's tables.
BuiltSection search_section(const StudyData& s, const SectionContext& ctx);
/// A study of a kind without a section of its own (one registered outside the
/// built-in four): the kind's tables (study::study_tables), its runs and their power.
BuiltSection study_tables_section(const StudyData& s, const SectionContext& ctx);

using SectionBuilder = BuiltSection (*)(const StudyData&, const SectionContext&);
/// The section builder of a study kind: its own for grid, pretrain,
/// multitask and search, study_tables_section for any other.
SectionBuilder section_builder(std::string_view kind);
/// Runs outside studies.
BuiltSection other_runs_section(const std::vector<RunData>& runs, const SectionContext& ctx);

/// Studies with their trial counts, energy and emissions.
Section overview_section(const ReportData& data, const SectionContext& ctx);
/// Host, CPU, GPU, torch version, commit, threads and sampling of every run.
Section environment_section(const ReportData& data);
/// How each component was measured, sampling, PUE and carbon intensity.
Section method_section(const ReportData& data, const SectionContext& ctx);

/// Every table::Table of a section's blocks.
std::vector<table::Table> tables_of(const Section& s);
/// Every Figure of a section's blocks.
std::vector<Figure> figures_of(const Section& s);

}  // namespace powertrain::report
