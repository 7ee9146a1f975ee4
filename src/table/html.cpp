// A table as HTML markup for the report's page.
#include "powertrain/io/html.h"
#include "powertrain/table/print.h"

namespace powertrain::table {

std::string to_html(const Table& t) {
  using io::html_escape;
  std::string out = "<div class=\"table-wrap\"><table>\n";
  if (!t.title.empty()) out += "<caption>" + html_escape(t.title) + "</caption>\n";
  out += "<thead><tr>";
  for (const auto& c : t.columns) out += "<th>" + html_escape(c.header) + "</th>";
  out += "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    out += "<tr>";
    for (std::size_t i = 0; i < row.size() && i < t.columns.size(); ++i) {
      const Cell& c = row[i];
      std::string cls = is_numeric(c) ? "num" : "";
      if (!c.mark.empty()) cls += (cls.empty() ? "" : " ") + c.mark;
      out += cls.empty() ? "<td>" : "<td class=\"" + html_escape(cls) + "\">";
      out += html_escape(cell_text(c, t.columns[i])) + "</td>";
    }
    out += "</tr>\n";
  }
  out += "</tbody></table></div>\n";
  return out;
}

}  // namespace powertrain::table
