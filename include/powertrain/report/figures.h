#pragma once
// The report's figures as gnuplot scripts over plain inputs. Each function only
// builds the Figure (script and data files); render() in gnuplot.h draws it.
// Every axis is labeled with its unit.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "powertrain/report/data.h"
#include "powertrain/report/gnuplot.h"

namespace powertrain::report {

/// Power of each timeline channel of a run over time, with the epoch
/// boundaries (cumulative epoch durations) as dashed lines. Series longer than
/// `max_points` are averaged in equal time buckets. None if the run has no
/// timeline.
std::optional<Figure> timeline_figure(const RunData& run, const std::string& name, std::size_t max_points = 1500);

/// One cell of a batch size x learning rate heatmap.
struct HeatCell {
  std::size_t x = 0;            ///< index into HeatmapInput::x_labels
  std::size_t y = 0;            ///< index into HeatmapInput::y_labels
  std::optional<double> value;  ///< none: drawn grey with `note`
  std::string text;             ///< label drawn in the cell (the value, formatted)
  std::string note;             ///< e.g. "diverged", "no result"
};

struct HeatmapInput {
  std::string name;
  std::string title;
  std::string caption;
  std::string x_label;  ///< with unit, e.g. "batch size (samples)"
  std::string y_label;  ///< e.g. "learning rate"
  std::string value_label;  ///< colour bar, with unit, e.g. "energy per epoch (J)"
  std::vector<std::string> x_labels;  ///< categories in order
  std::vector<std::string> y_labels;
  std::vector<HeatCell> cells;
  bool lower_is_better = true;  ///< light cells are the better ones
  std::optional<std::pair<std::size_t, std::size_t>> highlight;  ///< (x, y) framed, e.g. the best configuration
};
Figure heatmap_figure(const HeatmapInput& in);

/// One configuration in the energy-metric plane.
struct ParetoPoint {
  double energy_j = 0.0;
  double metric = 0.0;
  std::string label;      ///< e.g. "bs 64, lr 0.01"
  bool on_front = false;  ///< no other point has less energy and a better metric
};
struct ParetoInput {
  std::string name;
  std::string title;
  std::string caption;
  std::string energy_label = "energy to convergence (J)";
  std::string metric_label = "final validation accuracy (fraction)";
  std::vector<ParetoPoint> points;
  bool log_energy = false;  ///< log x axis (energies spanning decades)
};
Figure pareto_figure(const ParetoInput& in);

/// A cumulative-energy line: energy after n uses = fixed_j + n x per_use_j,
/// drawn from 0 to max_uses; `measured` are cumulative energies actually
/// measured (x = uses so far), drawn as markers on it.
struct CostLine {
  std::string label;  ///< e.g. "from scratch", "pretrain + fine-tune"
  double fixed_j = 0.0;
  double per_use_j = 0.0;
  std::vector<std::pair<double, double>> measured;
};
/// A marked point, e.g. a break-even number of reuses.
struct MarkedPoint {
  double x = 0.0;
  double y = 0.0;
  std::string label;
};
struct CumulativeInput {
  std::string name;
  std::string title;
  std::string caption;
  std::string x_label = "uses of the model (recycles)";
  std::string y_label = "cumulative energy (J)";
  double max_uses = 10;
  std::vector<CostLine> lines;
  std::vector<MarkedPoint> marks;
};
Figure cumulative_figure(const CumulativeInput& in);

/// Grouped bars: one group per category, one bar per series.
struct BarSeries {
  std::string label;  ///< legend, e.g. "multitask model"
  std::vector<std::optional<double>> values;  ///< one per category (none: no bar)
};
struct BarInput {
  std::string name;
  std::string title;
  std::string caption;
  std::string y_label;  ///< with unit
  std::vector<std::string> categories;
  std::vector<BarSeries> series;
};
Figure bar_figure(const BarInput& in);

/// One line of a curves figure: a setup's validation metric after each epoch
/// against the energy it had used by then.
struct CurveLine {
  std::string label;  ///< legend, e.g. "bs=64 lr=0.01"
  std::vector<std::pair<double, double>> points;  ///< (cumulative energy J, validation metric), in epoch order
  bool stopped = false;  ///< stopped early: dashed grey, a cross at its last point
  bool chosen = false;   ///< drawn thick on top of the others
};
struct CurvesInput {
  std::string name;
  std::string title;
  std::string caption;
  std::string x_label = "cumulative energy (J)";
  std::string y_label = "validation metric (fraction)";
  std::vector<CurveLine> lines;   ///< one data file each ("line<i>"); lines without a finite point are left out
  std::optional<double> target;  ///< a horizontal line at the target metric
};
Figure curves_figure(const CurvesInput& in);

/// Number formatting shared by figures and tables: `digits` significant
/// digits (whole numbers from 10^digits up), trailing zeros dropped, an
/// exponent only below 1e-4 or from 1e9, "-" for NaN or none.
std::string format_number(double v, int digits = 4);
std::string format_number(const std::optional<double>& v, int digits = 4);

/// "2024-01-02 03:04 UTC" for the store's ISO 8601 UTC times
/// ("2024-01-02T03:04:05.678Z"); anything else unchanged; "" stays "".
std::string format_time(std::string_view iso);

/// A unit for energies of this size: J, kJ, MJ or GJ, and joules per unit.
struct EnergyUnit {
  std::string name;
  double joules = 1.0;
};
EnergyUnit energy_unit_for(double max_abs_j);

}  // namespace powertrain::report
