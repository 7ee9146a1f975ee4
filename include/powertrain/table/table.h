#pragma once
// The one table model of powertrain: a query's rows, a study's result tables
// and the report's tables are all a Table of Cells under Columns. Built once,
// printed many ways (table/print.h: console, CSV, CSV as shown, JSON, HTML).
// No torch, no store.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace powertrain::table {

/// One value: NULL, an integer, a real or text (SQLite's types; BLOBs come back as text bytes).
using Value = std::variant<std::monostate, std::int64_t, double, std::string>;

/// "" for NULL, the shortest text that reads back to the same double for a real.
std::string to_text(const Value& v);
/// A real, NULL when NaN or infinite.
Value real(double v);

/// One column.
struct Column {
  std::string name;     ///< snake_case with unit suffix, e.g. "energy_per_epoch_j" (CSV and JSON name)
  std::string header;   ///< what a reader sees, e.g. "J/epoch"
  int digits = 3;       ///< significant digits shown for reals; 0: shortest exact form
  bool has_sd = false;  ///< cells carry a spread: shown "m ± sd", a "<name>_sd" column in CSV and JSON
};

/// How a cell aligns where alignment shows (HTML): numbers to the right.
enum class Align { automatic, left, right };

/// A cell: its value, for columns with has_sd its spread (NULL when none),
/// and how it is shown.
struct Cell {
  Value value;
  Value sd;
  /// The text shown instead of the value's own form (a bound "≥ 12", a unit
  /// already applied); the value is still what CSV and JSON carry.
  std::optional<std::string> shown;
  std::string mark;  ///< an emphasis such as "best", "worst", "estimate" (an HTML class); empty for none
  Align align = Align::automatic;  ///< automatic: right for integers and reals

  Cell() = default;
  Cell(Value v, Value spread = std::monostate{}) : value(std::move(v)), sd(std::move(spread)) {}  // NOLINT: implicit by design
  Cell(std::string text) : value(text), shown(std::move(text)) {}  // NOLINT: text shown as it is
  Cell(const char* text) : Cell(std::string(text)) {}              // NOLINT
  /// Text that reads as a number (right-aligned; not escaped as a formula in CSV).
  static Cell number(std::string text, std::string mark = {});
  Cell with_mark(std::string m) && {
    mark = std::move(m);
    return std::move(*this);
  }
};

struct Table {
  std::string name;   ///< file name stem, e.g. "grid_configs" (letters, digits, '-', '_')
  std::string title;  ///< heading or caption
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> notes;  ///< lines under the table (kept in JSON)
  /// Console only: each row as "header: value" lines (one-row summaries).
  bool vertical = false;

  /// Index of column `name`; throws Error if there is none.
  std::size_t column(std::string_view name) const;
};

/// Columns from headers alone (a table written for reading): each name is its
/// header in snake_case ("energy (J)" -> "energy_j").
std::vector<Column> headed(const std::vector<std::string>& headers);

/// A field of a table over rows of type Row: the column and how to read it.
template <typename Row>
struct Field {
  Column column;
  std::function<Cell(const Row&)> get;
};

/// A table from one field list and the rows.
template <typename Row>
Table make_table(std::string name, std::string title, const std::vector<Field<Row>>& fields,
                 const std::vector<Row>& rows) {
  Table t;
  t.name = std::move(name);
  t.title = std::move(title);
  for (const auto& f : fields) t.columns.push_back(f.column);
  for (const auto& r : rows) {
    std::vector<Cell> cells;
    cells.reserve(fields.size());
    for (const auto& f : fields) cells.push_back(f.get(r));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

}  // namespace powertrain::table
