#pragma once
// Text cells of CSV files: a spreadsheet opening the file runs a cell that
// starts with '=', '+', '-' or '@' (or a tab or carriage return) as a formula.
// Such text (a task name, a program's error message) is written with a
// leading apostrophe, which spreadsheets show as text. Numbers are not text
// cells and keep their sign; a lone "-" or "+" (a placeholder) stays as it is.
#include <string>
#include <string_view>

namespace powertrain::io {

inline std::string csv_text_cell(std::string_view s) {
  if (s.empty()) return std::string();
  const char c = s.front();
  const bool formula = c == '=' || c == '@' || c == '\t' || c == '\r' || ((c == '+' || c == '-') && s.size() > 1);
  return formula ? "'" + std::string(s) : std::string(s);
}

}  // namespace powertrain::io
