#pragma once
// The studies' result tables. Each table is built from one field list (name,
// unit, digits, value and optional spread per row) that drives every output
// format: console (mean ± sd in one cell), CSV (mean and "<name>_sd" columns)
// and JSON (numbers, null for NaN). No torch.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/store/records.h"
#include "powertrain/store/table.h"
#include "powertrain/study/analysis.h"

namespace powertrain::study {

/// One column of a result table.
struct Column {
  std::string name;    ///< snake_case with unit suffix, e.g. "energy_per_epoch_j" (CSV/JSON name)
  std::string header;  ///< console header, e.g. "J/epoch"
  int digits = 3;      ///< significant digits on the console (REAL values); 0: shortest exact form
  bool has_sd = false; ///< cells carry a spread: console "m ± sd", CSV/JSON a "<name>_sd" column
};

/// A cell: a value and, for columns with has_sd, its spread (NULL when none).
struct Cell {
  store::Value value;
  store::Value sd;
};

struct ResultTable {
  std::string name;   ///< file name stem, e.g. "grid_configs"
  std::string title;  ///< console heading
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> notes;  ///< lines printed under the console table (and kept in JSON)
  /// Console only: print each row as "header: value" lines (one-row summaries).
  bool vertical = false;
};

/// A field of a table over rows of type Row: the column and how to read it.
template <typename Row>
struct Field {
  Column column;
  std::function<Cell(const Row&)> get;
};

/// Builds a table from one field list and the rows.
template <typename Row>
ResultTable make_table(std::string name, std::string title, const std::vector<Field<Row>>& fields,
                       const std::vector<Row>& rows) {
  ResultTable t;
  t.name = std::move(name);
  t.title = std::move(title);
  for (const auto& f : fields) t.columns.push_back(f.column);
  for (const auto& r : rows) {
    std::vector<Cell> cells;
    for (const auto& f : fields) cells.push_back(f.get(r));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

/// A REAL value, NULL when NaN or infinite.
store::Value real(double v);
/// Mean and sd of a Stat as a cell; the sd is NULL for fewer than two values.
Cell stat_cell(const Stat& s);

/// Every table of a stored study from its trial outcomes: trials, then the
/// kind's analysis (grid: configurations, ranking, Pareto front, factor
/// effects, summary; pretrain: steps, break-even; multitask: tasks, totals).
std::vector<ResultTable> study_tables(const store::Study& study, const std::vector<TrialOutcome>& trials);

/// The per-trial table every study has; its notes say which trials ran on a
/// busy machine and which waited for a quiet one.
ResultTable trials_table(const std::vector<TrialOutcome>& trials);
/// Trials whose Slurm task the cluster accounted energy for: powertrain's figure
/// beside sacct's; nullopt when there is none.
std::optional<ResultTable> cluster_energy_table(const std::vector<TrialOutcome>& trials);
/// How well the forecasts predicted the energy to convergence of the finished
/// runs whose epochs are attached (attach_epochs): per trial, the forecast after
/// 25% and 50% of its epochs (as recorded with the epoch; recomputed for runs
/// recorded before forecasts were) against its energy; notes with the median
/// error and interval coverage of the curve ensemble beside CarbonTracker's
/// linear rule. nullopt when no finished run has two epochs.
std::optional<ResultTable> prediction_table(const std::vector<TrialOutcome>& trials);
/// The console form of a cell (as print_table writes it).
std::string cell_text(const Cell& c, const Column& col);
/// How many trials ran while other processes used a material share of the CPUs.
std::size_t interference_count(const std::vector<TrialOutcome>& trials);
/// The one line that explains the "busy" flag for `n` such trials.
std::string interference_note(std::size_t n);
std::vector<ResultTable> grid_tables(const GridAnalysis& g);
std::vector<ResultTable> pretrain_tables(const PretrainAnalysis& a);
std::vector<ResultTable> multitask_tables(const MultitaskAnalysis& a);

/// Console: a heading, aligned columns, notes.
void print_table(std::FILE* out, const ResultTable& t);
/// CSV with a header row; "<name>_sd" after each column with a spread. NULL: empty field.
std::string to_csv(const ResultTable& t);
/// {"name", "title", "columns": [...], "rows": [{column: value, column_sd: sd}], "notes": [...]}.
nlohmann::json to_json(const ResultTable& t);
/// Writes "<dir>/<prefix><table name>.csv" for every table (io::write_output);
/// creates dir. `prefix` must be a safe file name part (io::safe_file_name). An
/// existing file is replaced when it starts with the same header row, else only
/// with `force`. Throws IoError.
void write_csv_files(const std::filesystem::path& dir, const std::string& prefix, const std::vector<ResultTable>& tables,
                     bool force = false);

}  // namespace powertrain::study
