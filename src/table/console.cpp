// A table on the console, and every cell's text as shown.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "powertrain/io/text.h"
#include "powertrain/table/print.h"

namespace powertrain::table {

std::string real_text(double v, int digits) {
  if (v == 0.0) return "0";
  if (digits <= 0) return fmt::format("{}", v);  // shortest exact form: learning rates, levels
  const double a = std::fabs(v);
  if (a >= 1e-3 && a < 1e15) {
    const int magnitude = static_cast<int>(std::floor(std::log10(a)));
    const int decimals = std::max(0, digits - 1 - magnitude);
    return fmt::format("{:.{}f}", v, decimals);
  }
  return fmt::format("{:.{}g}", v, digits);
}

namespace {

std::string value_text(const Value& v, int digits) {
  if (std::holds_alternative<std::monostate>(v)) return "-";
  if (const auto* d = std::get_if<double>(&v)) return real_text(*d, digits);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  return std::get<std::string>(v);
}

// Display width: "±" is one column wide but two bytes.
std::size_t width_of(const std::string& s) { return s.size() - (s.find("±") != std::string::npos ? 1 : 0); }

std::string padded(const std::string& s, std::size_t w) {
  const auto n = width_of(s);
  return s + std::string(w > n ? w - n : 0, ' ');
}

}  // namespace

std::string cell_text(const Cell& c, const Column& col) {
  if (c.shown) return *c.shown;
  std::string s = io::printable(value_text(c.value, col.digits));  // names come from users' specs
  if (col.has_sd && !std::holds_alternative<std::monostate>(c.value) && !std::holds_alternative<std::monostate>(c.sd))
    s += " ± " + value_text(c.sd, std::max(1, col.digits - 1));
  return s;
}

bool is_numeric(const Cell& c) {
  if (c.align != Align::automatic) return c.align == Align::right;
  return std::holds_alternative<double>(c.value) || std::holds_alternative<std::int64_t>(c.value);
}

void print_console(std::FILE* out, const Table& t) {
  fmt::print(out, "\n{}\n", t.title);
  if (t.vertical) {
    std::size_t w = 0;
    for (const auto& c : t.columns) w = std::max(w, c.header.size());
    for (const auto& row : t.rows)
      for (std::size_t i = 0; i < t.columns.size(); ++i)
        fmt::print(out, "  {:<{}}  {}\n", t.columns[i].header, w, cell_text(row[i], t.columns[i]));
  } else {
    std::vector<std::vector<std::string>> cells;
    std::vector<std::size_t> width;
    for (const auto& c : t.columns) width.push_back(c.header.size());
    for (const auto& row : t.rows) {
      std::vector<std::string> line;
      for (std::size_t i = 0; i < t.columns.size(); ++i) {
        line.push_back(cell_text(row[i], t.columns[i]));
        width[i] = std::max(width[i], width_of(line.back()));
      }
      cells.push_back(std::move(line));
    }
    std::string header = " ";
    for (std::size_t i = 0; i < t.columns.size(); ++i) header += " " + padded(t.columns[i].header, width[i]);
    fmt::print(out, "{}\n", header);
    for (const auto& line : cells) {
      std::string s = " ";
      for (std::size_t i = 0; i < line.size(); ++i) s += " " + padded(line[i], width[i]);
      while (!s.empty() && s.back() == ' ') s.pop_back();
      fmt::print(out, "{}\n", s);
    }
    if (t.rows.empty()) fmt::print(out, "  (none)\n");
  }
  for (const auto& n : t.notes) fmt::print(out, "  {}\n", n);
}

}  // namespace powertrain::table
