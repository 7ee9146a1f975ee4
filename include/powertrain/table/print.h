#pragma once
// The printers of the one table model: console, CSV of the values, CSV as
// shown, JSON and HTML. Each takes a Table as built and changes nothing in it.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "powertrain/table/table.h"

namespace powertrain::table {

/// A real as the tables show it: `digits` significant digits without an
/// exponent for ordinary magnitudes (1e-3 to 1e15); 0 digits: the shortest
/// exact form.
std::string real_text(double v, int digits);
/// A cell as shown: its `shown` text, else its value with the column's digits
/// and " ± sd" where the column has a spread; "-" for NULL.
std::string cell_text(const Cell& c, const Column& col);
/// Whether a cell aligns right (Align::automatic: integers and reals do).
bool is_numeric(const Cell& c);

/// Console: the title, aligned columns (or "header  value" lines when
/// vertical), "(none)" for no rows, the notes.
void print_console(std::FILE* out, const Table& t);

/// CSV of the values: a header row of column names, "<name>_sd" after each
/// column with a spread, NULL as an empty field, LF line ends. Text cells that
/// a spreadsheet would run as a formula are written as text (io/csv.h).
std::string to_csv(const Table& t);
/// CSV as shown (the report's files beside its page): the headers, each cell's
/// text as shown, RFC 4180 quoting, CRLF line ends.
std::string to_shown_csv(const Table& t);

/// {"name", "title", "columns": [...], "rows": [{column: value, column_sd: sd}], "notes": [...]};
/// NULL, NaN and infinities as null.
nlohmann::json to_json(const Table& t);

/// <table> markup with the title as caption, every text escaped, numeric cells
/// of class "num", marks as classes.
std::string to_html(const Table& t);

/// Writes "<dir>/<prefix><table name>.csv" (to_csv) for every table
/// (io::write_output); creates dir. `prefix` must be a safe file name part. An
/// existing file is replaced when it starts with the same header row, else only
/// with `force`. Every file is checked before the first is written. Throws IoError.
void write_csv_files(const std::filesystem::path& dir, const std::string& prefix, const std::vector<Table>& tables,
                     bool force = false);

}  // namespace powertrain::table
