#pragma once
// The studies' result tables, in the one table model (table/table.h). Each is
// built from one field list (name, unit, digits, value and optional spread per
// row); table/print.h prints it on the console (mean ± sd in one cell), as CSV
// (mean and "<name>_sd" columns), JSON (numbers, null for NaN) and HTML. No torch.
#include <optional>
#include <string>
#include <vector>

#include "powertrain/store/records.h"
#include "powertrain/store/table.h"
#include "powertrain/table/table.h"
#include "powertrain/study/analysis.h"

namespace powertrain::study {

using table::Cell;
using table::Column;
using table::Field;
using table::make_table;
using table::real;

/// Mean and sd of a Stat as a cell; the sd is NULL for fewer than two values.
Cell stat_cell(const Stat& s);

/// Every table of a stored study from its trial outcomes: trials, then the
/// kind's analysis (grid: configurations, ranking, Pareto front, factor
/// effects, summary; pretrain: steps, break-even; multitask: tasks, totals).
std::vector<table::Table> study_tables(const store::Study& study, const std::vector<TrialOutcome>& trials);

/// The per-trial table every study has; its notes say which trials ran on a
/// busy machine and which waited for a quiet one.
table::Table trials_table(const std::vector<TrialOutcome>& trials);
/// Trials whose Slurm task the cluster accounted energy for: powertrain's figure
/// beside sacct's; nullopt when there is none.
std::optional<table::Table> cluster_energy_table(const std::vector<TrialOutcome>& trials);
/// How well the forecasts predicted the energy to convergence of the finished
/// runs whose epochs are attached (attach_epochs): per trial, the forecast after
/// 25% and 50% of its epochs (as recorded with the epoch; recomputed for runs
/// recorded before forecasts were) against its energy; notes with the median
/// error and interval coverage of the curve ensemble beside CarbonTracker's
/// linear rule. nullopt when no finished run has two epochs.
std::optional<table::Table> prediction_table(const std::vector<TrialOutcome>& trials);
/// How many trials ran while other processes used a material share of the CPUs.
std::size_t interference_count(const std::vector<TrialOutcome>& trials);
/// The one line that explains the "busy" flag for `n` such trials.
std::string interference_note(std::size_t n);
std::vector<table::Table> grid_tables(const GridAnalysis& g);
std::vector<table::Table> pretrain_tables(const PretrainAnalysis& a);
std::vector<table::Table> multitask_tables(const MultitaskAnalysis& a);

}  // namespace powertrain::study
