#pragma once
// Pieces of the self-contained HTML page: escaping, data URIs, tables.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace powertrain::report {

/// `s` safe as HTML text and as a double-quoted attribute value: & < > " '
/// become entities; invalid UTF-8 bytes become U+FFFD and control characters
/// other than tab and newline become spaces.
std::string html_escape(std::string_view s);

/// Standard base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

/// "data:MIME;base64,..." for an <img src>.
std::string data_uri(std::string_view mime, std::string_view bytes);

/// A table cell: its text (escaped when rendered) and how it aligns.
struct Cell {
  std::string text;
  bool numeric = false;  ///< right-aligned, tabular figures
  std::string css_class;  ///< e.g. "best", "worst", "estimate"; empty for none
  Cell() = default;
  Cell(std::string t) : text(std::move(t)) {}                   // NOLINT: implicit by design
  Cell(const char* t) : text(t) {}                              // NOLINT
  Cell with_class(std::string cls) && {
    css_class = std::move(cls);
    return std::move(*this);
  }
  static Cell number(std::string t, std::string cls = {}) {
    Cell c(std::move(t));
    c.numeric = true;
    c.css_class = std::move(cls);
    return c;
  }
};

/// A table to show in the page and to write as CSV.
struct HtmlTable {
  std::string name;     ///< file stem for the CSV (letters, digits, '-', '_')
  std::string caption;  ///< shown above the table
  std::vector<std::string> header;  ///< column names with units, e.g. "energy (J)"
  std::vector<std::vector<Cell>> rows;
};

/// <table> markup with every text escaped.
std::string to_html(const HtmlTable& t);
/// RFC 4180 CSV: header line then rows, fields quoted where needed.
std::string to_csv(const HtmlTable& t);

}  // namespace powertrain::report
