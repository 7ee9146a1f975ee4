#include "powertrain/report/page.h"

#include <fmt/format.h>

#include "powertrain/table/print.h"

namespace powertrain::report {

namespace {

// The page's only styling; system fonts, so nothing is fetched.
constexpr const char* kCss = R"css(
:root { --ink:#1a202c; --muted:#4a5568; --faint:#718096; --line:#e2e8f0; --bg:#f7fafc; --card:#ffffff;
        --accent:#2b6cb0; --good:#276749; --good-bg:#f0fff4; --warn:#975a16; --warn-bg:#fffbea; --bad:#c53030; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 28px; }
header.top { background: #1a365d; color: #fff; padding: 26px 0 22px; }
header.top h1 { margin: 0 0 4px; font-size: 26px; font-weight: 650; letter-spacing: -0.01em; }
header.top .sub { margin: 0; color: #bee3f8; font-size: 14px; }
main.wrap { padding: 24px 28px 40px; }
nav.toc { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px;
          margin: 0 0 20px; font-size: 14px; }
nav.toc strong { color: var(--muted); margin-right: 10px; }
nav.toc a { color: var(--accent); text-decoration: none; margin-right: 16px; white-space: nowrap; }
nav.toc a:hover { text-decoration: underline; }
.notice { border-radius: 8px; padding: 12px 16px; margin: 0 0 14px; border: 1px solid; }
.notice.estimate { background: var(--warn-bg); border-color: #f6e05e; color: #744210; }
.notice.info { background: #ebf8ff; border-color: #90cdf4; color: #2a4365; }
.notice strong { font-weight: 700; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 20px 24px 10px; margin: 0 0 22px; box-shadow: 0 1px 2px rgba(0,0,0,0.03); }
h2 { margin: 0 0 12px; font-size: 21px; font-weight: 650; }
h2 .kind { font-size: 12px; font-weight: 600; color: var(--accent); background: #ebf8ff; border-radius: 999px;
           padding: 2px 10px; margin-left: 10px; vertical-align: middle; text-transform: uppercase; letter-spacing: 0.04em; }
h3 { font-size: 16px; margin: 22px 0 8px; color: var(--ink); }
p { margin: 8px 0 12px; }
.meta { color: var(--muted); font-size: 14px; }
.recommendation { background: var(--good-bg); border-left: 4px solid #38a169; border-radius: 6px;
                  padding: 12px 16px; margin: 10px 0 16px; color: #22543d; }
.recommendation .label { display: block; font-size: 12px; font-weight: 700; text-transform: uppercase;
                         letter-spacing: 0.05em; color: var(--good); margin-bottom: 2px; }
figure { margin: 14px 0 18px; }
figure .title { font-weight: 600; margin: 0 0 6px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
figure figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
.missing-figure { border: 1px dashed #cbd5e0; border-radius: 6px; padding: 18px; color: var(--muted);
                  background: #fafafa; font-size: 14px; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
caption { text-align: left; font-weight: 600; padding: 0 0 6px; color: var(--ink); }
th { text-align: left; font-weight: 600; color: var(--muted); background: #edf2f7; border-bottom: 2px solid #cbd5e0;
     padding: 6px 9px; vertical-align: bottom; }
td { padding: 5px 9px; border-bottom: 1px solid var(--line); vertical-align: top; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.best { background: #f0fff4 !important; color: var(--good); font-weight: 600; }
td.worst { background: #fff5f5 !important; color: var(--bad); }
td.estimate { color: var(--warn); font-weight: 600; }
td.muted { color: var(--faint); }
td.nowrap { white-space: nowrap; }
.badge { display: inline-block; font-size: 11.5px; font-weight: 700; border-radius: 4px; padding: 1px 7px;
         text-transform: uppercase; letter-spacing: 0.04em; }
.badge.estimate { background: #fefcbf; color: #744210; border: 1px solid #f6e05e; }
.badge.measured { background: #c6f6d5; color: #22543d; border: 1px solid #9ae6b4; }
details { margin: 10px 0 16px; }
details summary { cursor: pointer; color: var(--accent); font-weight: 600; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0 16px; font-size: 14px; }
dl.env dt { color: var(--muted); }
dl.env dd { margin: 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em;
       background: #edf2f7; border-radius: 3px; padding: 0 4px; }
footer { color: var(--faint); font-size: 13px; text-align: center; padding: 0 0 30px; }
@media print { body { background: #fff; } section { box-shadow: none; break-inside: avoid-page; } }
)css";

std::string render_figure(const Figure& f, const std::map<std::string, DrawnFigure>& figures) {
  std::string out = "<figure id=\"fig-" + html_escape(f.name) + "\">\n";
  if (!f.title.empty()) out += "<div class=\"title\">" + html_escape(f.title) + "</div>\n";
  const auto it = figures.find(f.name);
  if (it != figures.end() && !it->second.svg.empty()) {
    out += fmt::format("<img src=\"{}\" width=\"{}\" height=\"{}\" alt=\"{}\">\n",
                       data_uri("image/svg+xml", it->second.svg), f.width_px, f.height_px, html_escape(f.title));
  } else {
    const std::string note = it != figures.end() && !it->second.note.empty() ? it->second.note : "figure not drawn";
    out += "<div class=\"missing-figure\">Figure not drawn: " + html_escape(note) + "</div>\n";
  }
  if (!f.caption.empty()) out += "<figcaption>" + html_escape(f.caption) + "</figcaption>\n";
  out += "</figure>\n";
  return out;
}

}  // namespace

Block Block::markup(std::string html) {
  Block b;
  b.kind = Kind::html;
  b.html = std::move(html);
  return b;
}

Block Block::of(table::Table t) {
  Block b;
  b.kind = Kind::table;
  b.table = std::move(t);
  return b;
}

Block Block::of(Figure f) {
  Block b;
  b.kind = Kind::figure;
  b.figure = std::move(f);
  return b;
}

Block Block::details(std::string summary_html) {
  Block b;
  b.kind = Kind::details_begin;
  b.html = std::move(summary_html);
  return b;
}

Block Block::end_details() {
  Block b;
  b.kind = Kind::details_end;
  return b;
}

std::string badge(std::string_view text, std::string_view css_class) {
  return "<span class=\"badge " + html_escape(css_class) + "\">" + html_escape(text) + "</span>";
}

std::string render_html(const Page& page, const std::map<std::string, DrawnFigure>& figures) {
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<meta name=\"generator\" content=\"powertrain report\">\n";  // a later report may replace this page
  // Nothing but inline styles and data: images may load: the page works offline
  // and a stray external reference shows up as an error instead of a request.
  out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
         "style-src 'unsafe-inline'\">\n";
  out += "<title>" + html_escape(page.title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  out += "<header class=\"top\"><div class=\"wrap\"><h1>" + html_escape(page.title) + "</h1>";
  if (!page.subtitle.empty()) out += "<p class=\"sub\">" + html_escape(page.subtitle) + "</p>";
  out += "</div></header>\n<main class=\"wrap\">\n";
  for (const auto& n : page.notices) out += n + "\n";
  if (page.sections.size() > 1) {
    out += "<nav class=\"toc\"><strong>Contents</strong>";
    for (const auto& s : page.sections) out += "<a href=\"#" + html_escape(s.id) + "\">" + html_escape(s.title) + "</a>";
    out += "</nav>\n";
  }
  for (const auto& s : page.sections) {
    out += "<section id=\"" + html_escape(s.id) + "\">\n<h2>" + html_escape(s.title);
    if (!s.kind.empty()) out += "<span class=\"kind\">" + html_escape(s.kind) + "</span>";
    out += "</h2>\n";
    for (const auto& b : s.blocks) {
      switch (b.kind) {
        case Block::Kind::html: out += b.html + "\n"; break;
        case Block::Kind::table: out += table::to_html(b.table); break;
        case Block::Kind::figure: out += render_figure(b.figure, figures); break;
        case Block::Kind::details_begin: out += "<details><summary>" + b.html + "</summary>\n"; break;
        case Block::Kind::details_end: out += "</details>\n"; break;
      }
    }
    out += "</section>\n";
  }
  out += "</main>\n<footer>Generated by powertrain. Every energy figure carries how it was obtained: "
         "counter, sampled or estimated.</footer>\n</body>\n</html>\n";
  return out;
}

}  // namespace powertrain::report
