#include "powertrain/report/figures.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace powertrain::report {

namespace {

// Shared look: light grid, no top/right border, a colour-blind-safe cycle.
constexpr const char* kStyle = R"(set border 3 lc rgb '#4a5568'
set tics nomirror textcolor rgb '#2d3748'
set grid back lc rgb '#e2e8f0' lw 1 dt 1
set key textcolor rgb '#2d3748' box lc rgb '#cbd5e0' opaque samplen 2 spacing 1.2
set linetype 1 lc rgb '#2b6cb0' lw 2 pt 7 ps 0.9
set linetype 2 lc rgb '#dd6b20' lw 2 pt 5 ps 0.9
set linetype 3 lc rgb '#2f855a' lw 2 pt 9 ps 1.0
set linetype 4 lc rgb '#c53030' lw 2 pt 11 ps 1.0
set linetype 5 lc rgb '#6b46c1' lw 2 pt 13 ps 1.0
set linetype 6 lc rgb '#b7791f' lw 2 pt 7 ps 0.9
set linetype 7 lc rgb '#319795' lw 2 pt 5 ps 0.9
set linetype 8 lc rgb '#718096' lw 2 pt 9 ps 1.0
set linetype cycle 8
)";

std::string q(std::string_view s) { return gnuplot_quote(s); }

// A string column of a gnuplot data file: gnuplot reads "..." as one column and
// has no escape inside it, so double quotes become single ones.
std::string column_text(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') {
      out += '\'';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// A number gnuplot reads back exactly enough for plotting; NaN as gnuplot's NaN.
std::string num(double v) { return std::isfinite(v) ? fmt::format("{:.9g}", v) : "NaN"; }

// Bucket-averages a series to at most max_points points (equal time buckets).
void downsample(const std::vector<double>& t, const std::vector<double>& p, std::size_t max_points,
                std::vector<double>& t_out, std::vector<double>& p_out) {
  const std::size_t n = std::min(t.size(), p.size());
  if (n <= max_points || max_points < 2) {
    t_out.assign(t.begin(), t.begin() + n);
    p_out.assign(p.begin(), p.begin() + n);
    return;
  }
  const double t0 = t.front();
  const double span = t[n - 1] - t0;
  std::vector<double> ts(max_points, 0.0), ps(max_points, 0.0);
  std::vector<int> counts(max_points, 0);
  for (std::size_t i = 0; i < n; ++i) {
    auto b = span > 0 ? static_cast<std::size_t>((t[i] - t0) / span * static_cast<double>(max_points)) : 0;
    b = std::min(b, max_points - 1);
    ts[b] += t[i];
    ps[b] += p[i];
    ++counts[b];
  }
  for (std::size_t b = 0; b < max_points; ++b) {
    if (counts[b] == 0) continue;
    t_out.push_back(ts[b] / counts[b]);
    p_out.push_back(ps[b] / counts[b]);
  }
}

// A plot with nothing to show draws its axes and says why, instead of failing.
std::string empty_plot(std::string_view message) {
  return fmt::format("set xrange [0:1]\nset yrange [0:1]\nset label 99 {} at graph 0.5, graph 0.5 center "
                     "textcolor rgb '#718096'\nplot NaN notitle\n",
                     gnuplot_quote(message));
}

// The gnuplot plot command over the plot's parts, one part per continued line.
std::string plot_command(const std::vector<std::string>& parts) {
  return fmt::format("plot {}\n", fmt::join(parts, ", \\\n  "));
}

const energy::ChannelEnergy* channel_info(const RunData& run, const std::string& id) {
  for (const auto& e : run.epochs)
    for (const auto& ch : e.channels)
      if (ch.channel_id == id) return &ch;
  return nullptr;
}

}  // namespace

std::string format_number(double v, int digits) {
  if (!std::isfinite(v)) return std::isnan(v) ? "-" : (v > 0 ? "inf" : "-inf");
  if (v == 0.0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e9 || a < 1e-4) return fmt::format("{:.{}e}", v, std::max(digits - 1, 0));
  const int magnitude = static_cast<int>(std::floor(std::log10(a)));
  const int decimals = std::max(digits - 1 - magnitude, 0);
  std::string s = fmt::format("{:.{}f}", v, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s == "-0" ? "0" : s;
}

std::string format_number(const std::optional<double>& v, int digits) {
  return v ? format_number(*v, digits) : "-";
}

std::string format_time(std::string_view iso) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  if (iso.size() >= 17 && iso[4] == '-' && iso[7] == '-' && iso[10] == 'T' && iso[13] == ':' && iso.back() == 'Z') {
    return std::string(iso.substr(0, 10)) + " " + std::string(iso.substr(11, 5)) + " UTC";
  }
  return std::string(iso);
}

EnergyUnit energy_unit_for(double max_abs_j) {
  if (!std::isfinite(max_abs_j) || max_abs_j < 1e4) return {"J", 1.0};
  if (max_abs_j < 1e7) return {"kJ", 1e3};
  if (max_abs_j < 1e10) return {"MJ", 1e6};
  return {"GJ", 1e9};
}

std::optional<Figure> timeline_figure(const RunData& run, const std::string& name, std::size_t max_points) {
  bool any = false;
  double t_end = 0.0;
  for (const auto& s : run.timeline) {
    if (!s.t_s.empty()) any = true;
    if (!s.t_s.empty()) t_end = std::max(t_end, s.t_s.back());
  }
  if (!any) return std::nullopt;

  Figure f;
  f.name = name;
  f.title = fmt::format("Power of run {} over time", run.run.id);
  f.width_px = 960;
  f.height_px = 460;
  std::string plot;
  bool downsampled = false;
  int index = 0;
  std::size_t longest_label = 0;
  for (const auto& s : run.timeline) {
    if (s.t_s.empty()) continue;
    std::vector<double> t, p;
    downsample(s.t_s, s.power_w, max_points, t, p);
    downsampled = downsampled || t.size() < s.t_s.size();
    std::string text = "# t_s power_w\n";
    for (std::size_t i = 0; i < t.size(); ++i) text += num(t[i]) + " " + num(p[i]) + "\n";
    const std::string file = fmt::format("ch{}", index);
    f.data.push_back({file, std::move(text)});
    std::string label = s.channel_id;
    if (const auto* ch = channel_info(run, s.channel_id)) {
      label = fmt::format("{}: {}, {}{}", energy::to_string(ch->component), ch->device.empty() ? ch->channel_id : ch->device,
                          energy::to_string(ch->method), ch->in_total ? "" : ", not in total");
    }
    longest_label = std::max(longest_label, label.size());
    plot += fmt::format("{}data('{}') using 1:2 with lines lt {} title {}", plot.empty() ? "plot " : ", \\\n  ", file,
                        index + 1, q(label));
    ++index;
  }

  // The key sits under the x label: room for as many rows as the channels need.
  const std::size_t column_px = 8 * longest_label + 70;
  const std::size_t columns = std::max<std::size_t>(1, (static_cast<std::size_t>(f.width_px) - 100) / column_px);
  const std::size_t rows = (static_cast<std::size_t>(index) + columns - 1) / columns;
  f.height_px += static_cast<int>(18 * rows);
  std::string script = kStyle;
  script += "set xlabel 'time since the run started (s)' offset 0,0.3\nset ylabel 'power (W)'\n";
  script += fmt::format("set key outside below center horizontal\nset bmargin {}\nset yrange [0:*]\n", num(4.0 + 1.5 * rows));
  // Epoch boundaries: cumulative epoch durations.
  double t = 0.0;
  std::string x2tics;
  const std::size_t every = std::max<std::size_t>(1, run.epochs.size() / 25 + 1);
  for (std::size_t i = 0; i < run.epochs.size(); ++i) {
    const double start = t;
    t += run.epochs[i].duration_s;
    script += fmt::format("set arrow from {0}, graph 0 to {0}, graph 1 nohead back dt 2 lw 1 lc rgb '#a0aec0'\n", num(t));
    if (i % every == 0) {
      x2tics += fmt::format("{}\"{}\" {}", x2tics.empty() ? "" : ", ", run.epochs[i].epoch, num((start + t) / 2));
    }
  }
  const double x_max = std::max(t_end, t);
  if (x_max > 0) script += fmt::format("set xrange [0:{}]\nset x2range [0:{}]\n", num(x_max), num(x_max));
  if (!x2tics.empty()) {
    script += "set x2tics (" + x2tics + ") scale 0 textcolor rgb '#718096'\nset x2label 'epoch' textcolor rgb '#718096'\n";
  }
  script += plot + "\n";
  f.script = std::move(script);
  f.caption = fmt::format(
      "Power per energy channel as the sampler read it, over the run's {} epoch{} ({}, batch size {}, learning rate {}). "
      "Dashed lines are epoch boundaries, placed at the cumulative epoch durations.{}",
      run.epochs.size(), run.epochs.size() == 1 ? "" : "s", run.run.config.dataset, run.run.config.batch_size,
      run.run.config.learning_rate,
      downsampled ? fmt::format(" Long series are averaged to at most {} points per channel.", max_points) : "");
  return f;
}

Figure heatmap_figure(const HeatmapInput& in) {
  Figure f;
  f.name = in.name;
  f.title = in.title;
  f.caption = in.caption;
  const std::size_t nx = std::max<std::size_t>(in.x_labels.size(), 1);
  const std::size_t ny = std::max<std::size_t>(in.y_labels.size(), 1);
  f.width_px = static_cast<int>(std::clamp<std::size_t>(260 + 110 * nx, 560, 960));
  f.height_px = static_cast<int>(std::clamp<std::size_t>(150 + 62 * ny, 360, 720));

  double lo = INFINITY, hi = -INFINITY;
  for (const auto& c : in.cells)
    if (c.value && std::isfinite(*c.value)) {
      lo = std::min(lo, *c.value);
      hi = std::max(hi, *c.value);
    }
  std::string values = "# x y value label textcolour\n";
  std::string missing = "# x y note\n";
  for (const auto& c : in.cells) {
    if (c.value && std::isfinite(*c.value)) {
      double rel = hi > lo ? (*c.value - lo) / (hi - lo) : 0.0;
      if (!in.lower_is_better) rel = 1.0 - rel;
      const int colour = rel > 0.55 ? 0xFFFFFF : 0x1A202C;  // dark cells get white text
      values += fmt::format("{} {} {} {} {}\n", c.x, c.y, num(*c.value), column_text(c.text.empty() ? format_number(*c.value) : c.text),
                            colour);
    } else {
      missing += fmt::format("{} {} {}\n", c.x, c.y, column_text(c.note.empty() ? "no result" : c.note));
    }
  }
  f.data.push_back({"values", values});
  f.data.push_back({"missing", missing});

  std::string script = kStyle;
  std::string xt, yt;
  for (std::size_t i = 0; i < in.x_labels.size(); ++i) xt += fmt::format("{}{} {}", i ? ", " : "", q(in.x_labels[i]), i);
  for (std::size_t i = 0; i < in.y_labels.size(); ++i) yt += fmt::format("{}{} {}", i ? ", " : "", q(in.y_labels[i]), i);
  script += "unset grid\nset border 15 lc rgb '#cbd5e0'\nset tics scale 0\n";
  script += fmt::format("set xrange [-0.5:{}]\nset yrange [-0.5:{}]\n", num(nx - 0.5), num(ny - 0.5));
  if (!xt.empty()) script += "set xtics (" + xt + ")\n";
  if (!yt.empty()) script += "set ytics (" + yt + ")\n";
  script += fmt::format("set xlabel {}\nset ylabel {}\nset cblabel {}\n", q(in.x_label), q(in.y_label), q(in.value_label));
  script += in.lower_is_better
                ? "set palette defined (0 '#fff7bc', 0.35 '#fec44f', 0.7 '#d95f0e', 1 '#7f2704')\n"
                : "set palette defined (0 '#7f2704', 0.3 '#d95f0e', 0.65 '#fec44f', 1 '#fff7bc')\n";
  if (std::isfinite(lo) && hi > lo) {
    script += fmt::format("set cbrange [{}:{}]\n", num(lo), num(hi));
  } else if (std::isfinite(lo)) {
    script += fmt::format("set cbrange [{}:{}]\n", num(lo - 0.5 * std::fabs(lo) - 1e-9), num(lo + 0.5 * std::fabs(lo) + 1e-9));
  }
  script += "set cbtics textcolor rgb '#2d3748'\nunset key\n";
  script += "set style fill solid 1.0 border lc rgb '#ffffff'\n";
  if (in.highlight) {
    const double x = static_cast<double>(in.highlight->first), y = static_cast<double>(in.highlight->second);
    script += fmt::format(
        "set object 1 rect from {},{} to {},{} front fillstyle empty border lc rgb '#2b6cb0' lw 4\n", num(x - 0.47),
        num(y - 0.47), num(x + 0.47), num(y + 0.47));
  }
  // A data file with no rows makes gnuplot fail: plot only the non-empty ones.
  const bool have_values = values.find('\n') != values.size() - 1;
  const bool have_missing = missing.find('\n') != missing.size() - 1;
  std::vector<std::string> parts;
  if (have_values) {
    parts.push_back("data('values') using 1:2:(0.5):(0.5):3 with boxxyerror fc palette");
  }
  if (have_missing) {
    parts.push_back("data('missing') using 1:2:(0.5):(0.5) with boxxyerror fc rgb '#edf2f7'");
  }
  if (have_values) parts.push_back("data('values') using 1:2:4:5 with labels tc rgb variable font ',11'");
  if (have_missing) parts.push_back("data('missing') using 1:2:3 with labels tc rgb '#718096' font ',10'");
  if (parts.empty()) {
    f.script = script + fmt::format("set label 99 'no results yet' at graph 0.5, graph 0.5 center\nplot NaN notitle\n");
    return f;
  }
  f.script = script + plot_command(parts);
  return f;
}

Figure pareto_figure(const ParetoInput& in) {
  Figure f;
  f.name = in.name;
  f.title = in.title;
  f.caption = in.caption;
  double max_e = 0.0, min_e = INFINITY;
  for (const auto& p : in.points) {
    if (!std::isfinite(p.energy_j)) continue;
    max_e = std::max(max_e, p.energy_j);
    if (p.energy_j > 0) min_e = std::min(min_e, p.energy_j);
  }
  const EnergyUnit unit = energy_unit_for(max_e);
  std::string all = "# energy metric\n", front = "# energy metric label\n";
  std::vector<const ParetoPoint*> on_front;
  for (const auto& p : in.points) {
    if (!std::isfinite(p.energy_j) || !std::isfinite(p.metric)) continue;
    all += num(p.energy_j / unit.joules) + " " + num(p.metric) + "\n";
    if (p.on_front) on_front.push_back(&p);
  }
  std::sort(on_front.begin(), on_front.end(), [](const auto* a, const auto* b) { return a->energy_j < b->energy_j; });
  for (const auto* p : on_front) {
    front += fmt::format("{} {} {}\n", num(p->energy_j / unit.joules), num(p->metric), column_text(p->label));
  }
  f.data.push_back({"all", all});
  f.data.push_back({"front", front});
  std::string script = kStyle;
  std::string xl = in.energy_label;
  if (const auto at = xl.rfind("(J)"); at != std::string::npos) xl.replace(at, 3, "(" + unit.name + ")");
  script += fmt::format("set xlabel {}\nset ylabel {}\n", q(xl), q(in.metric_label));
  script += "set key inside bottom right\nset offsets graph 0.05, graph 0.12, graph 0.08, graph 0.08\n";
  if (all.find('\n') == all.size() - 1) {
    f.script = script + empty_plot("no setup has a usable result yet");
    return f;
  }
  if (in.log_energy && min_e > 0 && std::isfinite(min_e)) script += "set logscale x\n";
  script += "plot data('all') using 1:2 with points lt 8 pt 7 ps 1.0 title 'configuration'";
  if (!on_front.empty()) {
    script +=
        ", \\\n  data('front') using 1:2 with steps lt 2 lw 2 dt 2 notitle"
        ", \\\n  data('front') using 1:2 with points lt 2 pt 7 ps 1.5 title 'Pareto front'"
        ", \\\n  data('front') using 1:2:3 with labels left offset 1,0.6 font ',9' tc rgb '#c05621' notitle";
  }
  script += "\n";
  f.script = std::move(script);
  return f;
}

Figure cumulative_figure(const CumulativeInput& in) {
  Figure f;
  f.name = in.name;
  f.title = in.title;
  f.caption = in.caption;
  const double xmax = std::max(in.max_uses, 1.0);
  double max_e = 0.0;
  for (const auto& l : in.lines) {
    max_e = std::max(max_e, std::fabs(l.fixed_j + xmax * l.per_use_j));
    for (const auto& [x, y] : l.measured) max_e = std::max(max_e, std::fabs(y));
  }
  const EnergyUnit unit = energy_unit_for(max_e);
  std::string script = kStyle;
  std::string yl = in.y_label;
  if (const auto at = yl.rfind("(J)"); at != std::string::npos) yl.replace(at, 3, "(" + unit.name + ")");
  script += fmt::format("set xlabel {}\nset ylabel {}\n", q(in.x_label), q(yl));
  script += fmt::format("set xrange [0:{}]\nset yrange [0:*]\nset key inside top left\n", num(xmax));
  if (xmax <= 20) script += "set xtics 1\n";
  std::vector<std::string> parts;
  for (std::size_t i = 0; i < in.lines.size(); ++i) {
    const auto& l = in.lines[i];
    if (!std::isfinite(l.fixed_j) || !std::isfinite(l.per_use_j)) continue;
    const std::string line = fmt::format("line{}", i);
    f.data.push_back({line, fmt::format("0 {}\n{} {}\n", num(l.fixed_j / unit.joules), num(xmax),
                                        num((l.fixed_j + xmax * l.per_use_j) / unit.joules))});
    parts.push_back(fmt::format("data('{}') using 1:2 with lines lt {} title {}", line, i + 1, q(l.label)));
    if (!l.measured.empty()) {
      std::string pts;
      for (const auto& [x, y] : l.measured) pts += num(x) + " " + num(y / unit.joules) + "\n";
      const std::string name = fmt::format("measured{}", i);
      f.data.push_back({name, pts});
      parts.push_back(fmt::format("data('{}') using 1:2 with points lt {} pt 7 ps 1.1 notitle", name, i + 1));
    }
  }
  if (!in.marks.empty()) {
    std::string marks;
    for (const auto& m : in.marks) {
      marks += fmt::format("{} {} {}\n", num(m.x), num(m.y / unit.joules), column_text(m.label));
    }
    f.data.push_back({"marks", marks});
    parts.push_back("data('marks') using 1:2 with points pt 6 ps 2.4 lw 2 lc rgb '#1a202c' title 'break-even'");
    parts.push_back("data('marks') using 1:2:3 with labels left offset 1.4,-1.1 font ',10' tc rgb '#1a202c' notitle");
  }
  if (parts.empty()) {
    f.script = script + empty_plot("no results yet");
    return f;
  }
  f.script = script + plot_command(parts);
  return f;
}

Figure curves_figure(const CurvesInput& in) {
  Figure f;
  f.name = in.name;
  f.title = in.title;
  f.caption = in.caption;
  f.width_px = 960;
  double max_e = 0.0;
  for (const auto& l : in.lines)
    for (const auto& [e, m] : l.points)
      if (std::isfinite(e)) max_e = std::max(max_e, e);
  const EnergyUnit unit = energy_unit_for(max_e);
  std::string script = kStyle;
  std::string xl = in.x_label;
  if (const auto at = xl.rfind("(J)"); at != std::string::npos) xl.replace(at, 3, "(" + unit.name + ")");
  script += fmt::format("set xlabel {}\nset ylabel {}\n", q(xl), q(in.y_label));
  // Many setups: the key goes beside the plot, where it cannot hide a curve.
  script += "set key outside right top vertical font ',10'\nset offsets 0, graph 0.02, graph 0.05, graph 0.05\n";
  script += "set xrange [0:*]\n";  // the energy a setup used since its first epoch: from zero

  // Drawing order: stopped setups underneath, the chosen one on top; the
  // others take the palette's colours but its blue (the chosen one's) and grey
  // (the stopped ones').
  std::vector<std::size_t> order;
  for (int pass = 0; pass < 3; ++pass)
    for (std::size_t i = 0; i < in.lines.size(); ++i) {
      const auto& l = in.lines[i];
      const int group = l.chosen ? 2 : l.stopped ? 0 : 1;
      if (group == pass) order.push_back(i);
    }
  std::vector<std::string> parts;
  std::string ends = "# energy metric\n";  // last points of the stopped setups
  bool any_stopped = false;
  int colour = 0;
  for (const auto i : order) {
    const auto& l = in.lines[i];
    // A diverged epoch's metric is not finite: left out, as gnuplot would.
    std::vector<std::pair<double, double>> points;
    for (const auto& [e, m] : l.points)
      if (std::isfinite(e) && std::isfinite(m)) points.emplace_back(e, m);
    if (points.empty()) continue;  // a data file with no rows makes gnuplot fail
    std::string text = "# energy metric\n";
    for (const auto& [e, m] : points) text += num(e / unit.joules) + " " + num(m) + "\n";
    const std::string file = fmt::format("line{}", i);
    f.data.push_back({file, std::move(text)});
    std::string style;
    if (l.chosen) {
      style = "with linespoints lt 1 lw 4 pt 7 ps 0.8";
    } else if (l.stopped) {
      style = "with linespoints dt 2 lw 1.5 lc rgb '#a0aec0' pt 7 ps 0.4";
      ends += num(points.back().first / unit.joules) + " " + num(points.back().second) + "\n";
      any_stopped = true;
    } else {
      style = fmt::format("with linespoints lt {} lw 2 pt 7 ps 0.5", 2 + colour++ % 6);
    }
    const std::string label = l.label + (l.chosen ? " (chosen)" : l.stopped ? " (stopped)" : "");
    parts.push_back(fmt::format("data('{}') using 1:2 {} title {}", file, style, q(label)));
  }
  if (parts.empty()) {
    f.script = script + empty_plot("no setup has finished a segment yet");
    return f;
  }
  if (any_stopped) {
    f.data.push_back({"stopped", ends});
    parts.push_back("data('stopped') using 1:2 with points pt 2 ps 1.4 lw 2 lc rgb '#718096' title 'stopped here'");
  }
  // A constant function: unlike an arrow it widens the y range to show the
  // target when no curve reached it.
  if (in.target && std::isfinite(*in.target))
    parts.push_back(fmt::format("{} with lines dt 3 lw 2 lc rgb '#c53030' title {}", num(*in.target),
                                q("target " + format_number(*in.target))));
  f.script = script + plot_command(parts);
  return f;
}

Figure bar_figure(const BarInput& in) {
  Figure f;
  f.name = in.name;
  f.title = in.title;
  f.caption = in.caption;
  const std::size_t nc = in.categories.size();
  const std::size_t ns = std::max<std::size_t>(in.series.size(), 1);
  f.width_px = static_cast<int>(std::clamp<std::size_t>(240 + 60 * nc * ns, 560, 960));
  f.height_px = 420;
  const double bw = 0.8 / static_cast<double>(ns);
  std::string script = kStyle;
  std::string xt;
  for (std::size_t i = 0; i < nc; ++i) xt += fmt::format("{}{} {}", i ? ", " : "", q(in.categories[i]), i);
  script += "set grid noxtics ytics\nset tics scale 0,0.5\n";
  if (!xt.empty()) script += "set xtics (" + xt + ")\n";
  script += fmt::format("set xrange [-0.6:{}]\nset yrange [0:*]\nset ylabel {}\n", num(nc - 0.4), q(in.y_label));
  script += "set style fill solid 0.9 noborder\nset key inside top left\nset offsets 0, 0, graph 0.12, 0\n";
  std::vector<std::string> parts;
  const auto present = [&](std::size_t s, std::size_t c) {
    return c < in.series[s].values.size() && in.series[s].values[c] && std::isfinite(*in.series[s].values[c]);
  };
  for (std::size_t s = 0; s < in.series.size(); ++s) {
    std::string text = "# x value width label\n";
    for (std::size_t c = 0; c < nc && c < in.series[s].values.size(); ++c) {
      if (!present(s, c)) continue;
      const auto& v = in.series[s].values[c];
      // Bars of a category are centred on it, counting only the series that have one there.
      std::size_t here = 0, pos = 0;
      for (std::size_t k = 0; k < in.series.size(); ++k) {
        if (!present(k, c)) continue;
        if (k < s) ++pos;
        ++here;
      }
      const double x = static_cast<double>(c) + (static_cast<double>(pos) - (static_cast<double>(here) - 1) / 2.0) * bw;
      text += fmt::format("{} {} {} {}\n", num(x), num(*v), num(bw * 0.92), column_text(format_number(*v, 3)));
    }
    const std::string name = fmt::format("series{}", s);
    f.data.push_back({name, text});
    if (text.find('\n') == text.size() - 1) continue;  // no bar in this series
    parts.push_back(fmt::format("data('{}') using 1:2:3 with boxes lt {} title {}", name, s + 1, q(in.series[s].label)));
    parts.push_back(fmt::format("data('{}') using 1:2:4 with labels offset 0,0.7 font ',9' tc rgb '#2d3748' notitle", name));
  }
  if (parts.empty()) {
    f.script = script + empty_plot("no results yet");
    return f;
  }
  f.script = script + plot_command(parts);
  return f;
}

}  // namespace powertrain::report
