// The table model: values, cells, columns.
#include "powertrain/table/table.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::table {

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

Value real(double v) {
  if (!std::isfinite(v)) return std::monostate{};
  return v;
}

Cell Cell::number(std::string text, std::string mark) {
  Cell c(std::move(text));
  c.align = Align::right;
  c.mark = std::move(mark);
  return c;
}

std::size_t Table::column(std::string_view wanted) const {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == wanted) return i;
  throw Error(fmt::format("no column '{}' in the table", wanted));
}

std::vector<Column> headed(const std::vector<std::string>& headers) {
  std::vector<Column> out;
  out.reserve(headers.size());
  for (const auto& h : headers) {
    std::string name;
    for (const char c : h) {
      const auto u = static_cast<unsigned char>(c);
      if (std::isalnum(u) != 0 && u < 0x80)
        name += static_cast<char>(std::tolower(u));
      else if (!name.empty() && name.back() != '_')
        name += '_';
    }
    while (!name.empty() && name.back() == '_') name.pop_back();
    out.push_back(Column{name.empty() ? "column" : name, h, 0, false});
  }
  return out;
}

}  // namespace powertrain::table
