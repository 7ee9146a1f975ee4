#pragma once
// What the study sections share (section_parts.cpp): number and energy text,
// the study's heading, its trials, its timelines and the study layer's tables
// as HTML. Private to the report layer; one file per kind's section uses it
// (grid_section.cpp, pretrain_section.cpp, multitask_section.cpp,
// search_section.cpp, study_sections.cpp).
#include <functional>
#include <string>
#include <vector>

#include "powertrain/report/sections.h"
#include "powertrain/study/analysis.h"
#include "powertrain/study/tables.h"

namespace powertrain::report::detail {

using study::Stat;

std::string lr_text(double lr);
std::string energy_text(double j, const EnergyUnit& u, int digits = 4);
std::string stat_text(const Stat& s, double scale = 1.0, int digits = 4);
std::string pct_text(double p);
std::string grams_co2(double energy_j, const energy::CarbonOptions& c);
bool estimated_method(const std::string& m);
Cell method_cell(const std::string& method);
std::string methods_of(const std::vector<const RunData*>& runs);
std::string study_prefix(const StudyData& s);
std::string section_id(const StudyData& s);
std::string estimate_suffix(bool estimated);
std::string command_line(const run::Command& c);
/// The line under a study's heading: what it trained, how, its trials' statuses.
std::string study_meta(const StudyData& s);
Block recommendation(const std::string& text);
Block paragraph(const std::string& text);
/// Timeline figures of a study's runs: the highlighted one inline, the others
/// in a collapsed block (up to a limit) and all of them in figures/.
void add_timelines(BuiltSection& out, const std::vector<const RunData*>& runs, const RunData* highlight,
                   const std::string& highlight_why, const std::string& prefix, const SectionContext& ctx);
/// Others' share of the CPU time while a trial ran: "62% (busy)" when material.
std::string others_cpu_text(const study::TrialOutcome& o);
table::Table trials_table(const StudyData& s, const std::vector<study::TrialOutcome>& outcomes);
/// A study table as it appears in the page (its CSV beside it under `name`).
table::Table html_of(const table::Table& r, const std::string& name);
/// The outcomes of a study's trials with their runs' epochs.
std::vector<study::TrialOutcome> outcomes_with_epochs(const StudyData& s);
/// The "every trial" block of a section, after a note when some trials ran on a busy machine.
void add_trials(Section& sec, const StudyData& s, const std::vector<study::TrialOutcome>& outcomes);
/// The cheapest usable run among the trials that `pick` accepts.
const RunData* cheapest_run(const StudyData& s, const std::vector<study::TrialOutcome>& outcomes,
                            const std::function<bool(const study::TrialOutcome&)>& pick);
std::string config_name(const study::ConfigSummary& c);

}  // namespace powertrain::report::detail
