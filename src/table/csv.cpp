// A table as CSV: its values (results --csv) or its cells as shown (the report's files).
#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/io/csv.h"
#include "powertrain/io/output.h"
#include "powertrain/table/print.h"

namespace powertrain::table {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// The values' CSV quotes fields with a comma, a quote or a line break.
std::string values_field(const std::string& s) {
  return s.find_first_of(",\"\n\r") == std::string::npos ? s : quoted(s);
}

// The shown CSV (RFC 4180) also quotes fields that start or end with a space.
std::string shown_field(const std::string& s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  return quote ? quoted(s) : s;
}

}  // namespace

std::string to_csv(const Table& t) {
  std::string out;
  std::vector<std::string> header;
  for (const auto& c : t.columns) {
    header.push_back(c.name);
    if (c.has_sd) header.push_back(c.name + "_sd");
  }
  for (std::size_t i = 0; i < header.size(); ++i) out += (i ? "," : "") + values_field(header[i]);
  out += "\n";
  for (const auto& row : t.rows) {
    std::string line;
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
      // Text cells (names, messages) cannot start a spreadsheet formula; numbers keep their sign.
      const bool text = std::holds_alternative<std::string>(row[i].value);
      const std::string v = to_text(row[i].value);
      line += (i ? "," : "") + values_field(text ? io::csv_text_cell(v) : v);
      if (t.columns[i].has_sd) line += "," + values_field(to_text(row[i].sd));
    }
    out += line + "\n";
  }
  return out;
}

std::string to_shown_csv(const Table& t) {
  std::string out;
  for (std::size_t i = 0; i < t.columns.size(); ++i) out += (i ? "," : "") + shown_field(t.columns[i].header);
  out += "\r\n";
  for (const auto& row : t.rows) {
    for (std::size_t i = 0; i < row.size() && i < t.columns.size(); ++i) {
      const std::string s = cell_text(row[i], t.columns[i]);
      // Text cells (names, messages) cannot start a spreadsheet formula; numbers keep their sign.
      out += (i ? "," : "") + shown_field(is_numeric(row[i]) ? s : io::csv_text_cell(s));
    }
    out += "\r\n";
  }
  return out;
}

void write_csv_files(const std::filesystem::path& dir, const std::string& prefix, const std::vector<Table>& tables,
                     bool force) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw IoError(fmt::format("{}: cannot create the directory: {}", dir.string(), ec.message()));
  std::vector<std::pair<std::filesystem::path, std::string>> files;
  for (const auto& t : tables) files.emplace_back(dir / (prefix + t.name + ".csv"), to_csv(t));
  // A file is a previous export of the same table when it starts with the same header row.
  auto rule_for = [force](const std::string& text) {
    const std::string header = text.substr(0, text.find('\n') + 1);
    return io::OutputRule{"table of powertrain results",
                          [header](std::string_view head) { return head.substr(0, header.size()) == header; },
                          header.size() + 1, force};
  };
  for (const auto& [path, text] : files) io::check_output(path, rule_for(text));
  for (const auto& [path, text] : files) io::write_output(path, text, rule_for(text));
}

}  // namespace powertrain::table
