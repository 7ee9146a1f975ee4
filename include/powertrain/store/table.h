#pragma once
// Rows of a query as plain values: what the report and results commands print
// as console tables, CSV or JSON.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace powertrain::store {

/// One SQLite value: NULL, INTEGER, REAL, or TEXT (BLOBs come back as TEXT bytes).
using Value = std::variant<std::monostate, std::int64_t, double, std::string>;

/// "" for NULL, the shortest text that reads back to the same double for REAL.
std::string to_text(const Value& v);

/// Column names and rows of a query, in the order SQLite returned them.
struct Table {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;

  /// Index of column `name`; throws StoreError if there is none.
  std::size_t column(std::string_view name) const;
};

}  // namespace powertrain::store
