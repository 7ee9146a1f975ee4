#pragma once
// The report page as plain data (sections of paragraphs, tables and figures)
// and its rendering to one self-contained HTML file: inline CSS, figures as
// SVG data URIs, no scripts, no external resources.
#include <map>
#include <string>
#include <vector>

#include "powertrain/report/gnuplot.h"
#include "powertrain/report/html.h"

namespace powertrain::report {

struct Block {
  enum class Kind {
    html,            ///< `html` is markup, already escaped
    table,           ///< `table`
    figure,          ///< `figure`: drawn by gnuplot, or a note where it could not be
    details_begin,   ///< opens a collapsed <details>; `html` is its summary markup
    details_end,
  };
  Kind kind = Kind::html;
  std::string html;
  table::Table table;
  Figure figure;

  static Block markup(std::string html);
  static Block of(table::Table t);
  static Block of(Figure f);
  static Block details(std::string summary_html);
  static Block end_details();
};

struct Section {
  std::string id;     ///< anchor: letters, digits, '-'
  std::string title;  ///< plain text (escaped when rendered)
  std::string kind;   ///< small label next to the title, e.g. "grid study"; plain text
  std::vector<Block> blocks;
};

struct Page {
  std::string title;     ///< plain text
  std::string subtitle;  ///< plain text
  /// Prominent notices at the top (markup, already escaped), e.g. that every
  /// energy number is an estimate.
  std::vector<std::string> notices;
  std::vector<Section> sections;
};

/// A figure as it will appear: its SVG, or why there is none.
struct DrawnFigure {
  std::string svg;   ///< the SVG file's bytes; empty when not drawn
  std::string note;  ///< plain text shown instead when svg is empty
};

/// The whole page. `figures` is keyed by Figure::name; a figure block without
/// an entry shows "figure not drawn".
std::string render_html(const Page& page, const std::map<std::string, DrawnFigure>& figures);

/// The escaped markup of a short status badge, e.g. badge("estimated", "estimate").
std::string badge(std::string_view text, std::string_view css_class);

}  // namespace powertrain::report
