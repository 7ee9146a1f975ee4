#include "powertrain/store/table.h"

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::store {

std::string to_text(const Value& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return {}; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    // fmt's default for double is the shortest text that reads back the same.
    std::string operator()(double d) const { return fmt::format("{}", d); }
    std::string operator()(const std::string& s) const { return s; }
  };
  return std::visit(Visitor{}, v);
}

std::size_t Table::column(std::string_view name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  throw StoreError(fmt::format("no column '{}' in the result", name));
}

}  // namespace powertrain::store
