#include "powertrain/report/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/report/output.h"
#include "powertrain/report/sections.h"
#include "powertrain/store/store.h"
#include "powertrain/table/print.h"

namespace powertrain::report {
namespace fs = std::filesystem;

namespace {

std::string now_utc() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw IoError(fmt::format("cannot write {}", path.string()));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// "3-5, 8" for a sorted list of ids.
std::string id_ranges(std::vector<std::int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + (j > i ? fmt::format("{}-{}", ids[i], ids[j]) : std::to_string(ids[i]));
    i = j + 1;
  }
  return out;
}

std::string sampling_of(const std::vector<const RunData*>& runs) {
  std::vector<std::string> v;
  for (const auto* r : runs) {
    const auto& s = r->run.environment.sampling;
    if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  }
  return v.empty() ? "not recorded" : join(v, "; ");
}

double total_energy(const std::vector<const RunData*>& runs) {
  double e = 0.0;
  for (const auto* r : runs)
    if (std::isfinite(r->run.summary.energy_j)) e += r->run.summary.energy_j;
  return e;
}

std::string method_description(const std::vector<std::string>& methods) {
  std::vector<std::string> out;
  constexpr std::string_view kPartial = ", partial";
  for (auto m : methods) {
    const bool partial = m.size() > kPartial.size() && m.ends_with(kPartial);
    if (partial) m.resize(m.size() - kPartial.size());
    const std::string tail = partial ? " for part of the window only (the source failed; see the notes)" : "";
    if (m == "counter") out.push_back("measured by a hardware energy counter (delta between readings)" + tail);
    if (m == "sampled") out.push_back("integrated from power samples (trapezoid rule)" + tail);
    if (m == "estimated") out.push_back("estimated from utilization by a model; nothing was measured");
  }
  return join(out, "; ");
}

}  // namespace

Section overview_section(const ReportData& data, const SectionContext& ctx) {
  Section sec;
  sec.id = "overview";
  sec.title = "Overview";
  table::Table t;
  t.name = "studies";
  t.title = "Studies in this report (energy of each trial's latest run, finished or not)";
  // Whole kWh read well for real studies; the small ones get Wh.
  double largest = 0.0;
  for (const auto& s : data.studies) largest = std::max(largest, total_energy(runs_of(s)));
  for (const auto& r : data.other_runs) largest = std::max(largest, r.run.summary.energy_j);
  const bool kwh = largest >= 3.6e6;
  t.columns = table::headed({"study", "kind", "trials", "with a result", "runs", "energy (J)", kwh ? "energy (kWh)" : "energy (Wh)",
              "CO2e (g)", "method", "created"});
  const auto row = [&](const std::string& name, const std::string& kind, const std::string& trials, const std::string& done,
                       const std::vector<const RunData*>& runs, const std::string& created) {
    const double e = total_energy(runs);
    std::vector<std::string> ms;
    for (const auto* r : runs)
      if (!r->run.summary.method.empty() && std::find(ms.begin(), ms.end(), r->run.summary.method) == ms.end())
        ms.push_back(r->run.summary.method);
    Cell method(ms.empty() ? "-" : join(ms, " / "));
    if (method.shown->find("estimated") != std::string::npos) method.mark = "estimate";
    t.rows.push_back({name, kind, Cell::number(trials), Cell::number(done), Cell::number(std::to_string(runs.size())),
                      Cell::number(format_number(e)), Cell::number(format_number(e / (kwh ? 3.6e6 : 3600.0))),
                      Cell::number(format_number(energy::carbon_of(e, ctx.carbon).emissions_kg * 1000.0, 3)), method,
                      Cell(created).with_mark("nowrap")});
  };
  for (const auto& s : data.studies) {
    int done = 0;
    for (const auto& tr : s.trials) done += store::is_done(tr.trial.status) ? 1 : 0;
    row(s.study.name, s.study.kind, std::to_string(s.trials.size()), std::to_string(done),
        runs_of(s), format_time(s.study.created_at));
  }
  if (!data.other_runs.empty()) {
    std::vector<const RunData*> runs;
    for (const auto& r : data.other_runs) runs.push_back(&r);
    row("(runs outside studies)", "runs", "-", "-", runs, "");
  }
  sec.blocks.push_back(Block::of(std::move(t)));
  return sec;
}

Section environment_section(const ReportData& data) {
  Section sec;
  sec.id = "environment";
  sec.title = "Environment";
  struct Env {
    run::Environment e;
    std::vector<std::int64_t> runs;
    std::vector<std::string> studies;
  };
  std::vector<Env> envs;
  const auto key = [](const run::Environment& e) {
    return std::tie(e.host, e.os, e.cpu_model, e.cpu_count, e.gpu, e.torch_version, e.commit, e.threads, e.sampling);
  };
  const auto find = [&](const run::Environment& e) -> Env& {
    for (auto& x : envs)
      if (key(x.e) == key(e)) return x;
    envs.push_back(Env{e, {}, {}});
    return envs.back();
  };
  for (const auto& s : data.studies) {
    if (s.runs.empty()) find(s.study.environment).studies.push_back(s.study.name);
    for (const auto& [id, r] : s.runs) find(r.run.environment).runs.push_back(id);
  }
  for (const auto& r : data.other_runs) find(r.run.environment).runs.push_back(r.run.id);
  sec.blocks.push_back(Block::markup(
      "<p>Where the runs ran, as each run recorded it when it started. Energy figures from different machines are not "
      "comparable.</p>"));
  table::Table t;
  t.name = "environment";
  t.columns = table::headed({"runs", "host", "OS", "CPU", "logical CPUs", "GPU", "torch", "commit", "threads", "sampling"});
  for (const auto& x : envs) {
    const auto& e = x.e;
    const std::string who = !x.runs.empty() ? id_ranges(x.runs) : "study " + join(x.studies);
    t.rows.push_back({who, e.host.empty() ? "-" : e.host, e.os.empty() ? "-" : e.os, e.cpu_model.empty() ? "-" : e.cpu_model,
                      Cell::number(std::to_string(e.cpu_count)), e.gpu.empty() ? "none" : e.gpu,
                      e.torch_version.empty() ? "-" : e.torch_version, e.commit.empty() ? "-" : e.commit,
                      Cell::number(std::to_string(e.threads)), e.sampling.empty() ? "-" : e.sampling});
  }
  sec.blocks.push_back(Block::of(std::move(t)));
  return sec;
}

// The run's own energy beside what the meters read, grouped by how the runs
// were told apart from the machine (run::Environment::attribution).
void attribution_blocks(Section& sec, const std::vector<const RunData*>& runs) {
  struct Group {
    std::vector<std::int64_t> ids;
    double own_j = 0.0, machine_j = 0.0;
  };
  std::map<std::string, Group> groups;
  for (const auto* r : runs) {
    const auto& env = r->run.environment;
    auto& g = groups[env.attribution.empty() ? std::string("not attributed (recorded before schema 8, or the CPU "
                                                           "time could not be read): the machine's figure")
                                             : env.attribution];
    g.ids.push_back(r->run.id);
    g.own_j += r->run.summary.energy_j;
    g.machine_j += r->run.summary.machine_energy_j;
  }
  if (groups.empty()) return;
  sec.blocks.push_back(Block::markup(
      "<p>Energy counters and the estimate cover the whole machine, which other people's work may share. Every figure "
      "in this report is the <strong>run's own</strong>: the idle power of the CPUs reserved for it (a Slurm "
      "allocation, a cgroup quota, a cpuset, else its thread count), the rest of the CPU power by its share of the "
      "machine's busy CPU time (from its cgroup where it has one, else its process tree), memory by its share of the "
      "memory in use, and the GPUs its processes used (split by per-process utilization when others share one, by "
      "slices for a MIG instance); GPUs used only by others are left out. What the meters read, the "
      "<strong>machine's</strong> figure, is kept beside it. The split is an attribution, not a separate "
      "measurement.</p>"));
  table::Table t;
  t.name = "attribution";
  t.title = "The runs' own energy beside the machine's";
  t.columns = table::headed({"runs", "own J", "machine J", "own / machine", "how the run was told apart"});
  for (const auto& [how, g] : groups)
    t.rows.push_back({id_ranges(g.ids), Cell::number(format_number(g.own_j)), Cell::number(format_number(g.machine_j)),
                      Cell::number(g.machine_j > 0 ? fmt::format("{:.0f}%", 100.0 * g.own_j / g.machine_j) : "-"),
                      how});
  sec.blocks.push_back(Block::of(std::move(t)));
}

Section method_section(const ReportData& data, const SectionContext& ctx) {
  Section sec;
  sec.id = "method";
  sec.title = "Method";
  const auto runs = runs_of(data);
  const auto comps = component_methods(runs);
  sec.blocks.push_back(Block::markup(
      "<p>Every energy number says how it was obtained: <strong>counter</strong> (the difference of a hardware energy "
      "counter), <strong>sampled</strong> (power samples integrated over time) or <strong>estimated</strong> (a model "
      "of power from utilization; nothing was measured). A run's energy is the sum of its channels that count in "
      "totals; parts that overlap another channel (RAPL core and uncore inside a package, psys, single board rails) "
      "are shown but not added.</p>"));
  table::Table t;
  t.name = "method";
  t.title = "How each component's energy was obtained";
  t.columns = table::headed({"component", "method", "how", "devices", "channels", "in totals", "runs", "sampling"});
  const std::string sampling = sampling_of(runs);
  for (const auto& c : comps) {
    std::vector<const RunData*> mine;
    for (const auto* r : runs)
      if (std::binary_search(c.runs.begin(), c.runs.end(), r->run.id)) mine.push_back(r);
    const std::string m(energy::to_string(c.method));
    Cell method(m);
    if (c.method == energy::Method::estimated) method.mark = "estimate";
    t.rows.push_back({std::string(energy::to_string(c.component)), method, method_description({m}), join(c.devices),
                      join(c.channels), c.in_total ? "yes" : "no", id_ranges(c.runs), sampling_of(mine)});
  }
  if (comps.empty()) {
    sec.blocks.push_back(Block::markup("<p>No epoch of these runs recorded per-channel energy.</p>"));
  } else {
    sec.blocks.push_back(Block::of(std::move(t)));
  }
  if (has_estimates(runs)) {
    sec.blocks.push_back(Block::markup(
        "<p>" + badge("estimated", "estimate") +
        " The CPU estimate is a linear model per logical CPU, P = N<sub>cpu</sub> × (W<sub>idle</sub> + u × "
        "(W<sub>full</sub> − W<sub>idle</sub>)) with the utilization u read from /proc/stat, and memory at a fixed "
        "power per GB in use (defaults 0.74 W idle and 3.5 W at full load per logical CPU, 0.375 W per GB: the Cloud "
        "Carbon Footprint averages). Real machines differ from these by a factor of two either way: compare estimated "
        "numbers with each other, not with measurements.</p>"));
  }
  attribution_blocks(sec, runs);
  sec.blocks.push_back(Block::markup(
      "<p>The sampler reads every source on one background thread at the interval shown (" + html_escape(sampling) +
      "); every epoch boundary reads all sources too, so counter energies are exact to the counter's resolution and "
      "sampled ones are interpolated between samples.</p>"));

  // Carbon: the store keeps no PUE or intensity for training runs.
  const auto c = energy::carbon_of(1.0, ctx.carbon);
  const bool default_pue = ctx.carbon.pue == 1.0;
  const bool default_intensity = !ctx.carbon.intensity_g_per_kwh && !ctx.carbon.table &&
                                 (ctx.carbon.region == "WORLD" || ctx.carbon.region == "world");
  const double e = total_energy(runs);
  const auto total = energy::carbon_of(e, ctx.carbon);
  sec.blocks.push_back(Block::markup(
      "<p>Emissions = energy × PUE × carbon intensity. The results store records neither PUE nor carbon intensity for "
      "training runs, so this report applies " +
      html_escape(fmt::format("a PUE of {}{} and a carbon intensity of {} gCO2e/kWh from {}{}", format_number(c.pue),
                              default_pue ? " (the default: no data-centre overhead)" : "",
                              format_number(c.intensity_g_per_kwh), c.intensity_source,
                              default_intensity ? ", the default world average" : "")) +
      ", computed with powertrain's energy layer (<code>powertrain/energy/carbon.h</code>). Change them with "
      "<code>--pue</code>, <code>--region</code> or <code>--carbon-intensity</code>.</p>"));
  table::Table ct;
  ct.name = "carbon";
  ct.title = "Carbon of every run in this report";
  ct.columns = table::headed({"energy (kWh)", "PUE", "intensity (gCO2e/kWh)", "intensity source", "emissions (kg CO2e)"});
  ct.rows.push_back({Cell::number(format_number(total.energy_kwh)), Cell::number(format_number(total.pue)),
                     Cell::number(format_number(total.intensity_g_per_kwh)), total.intensity_source,
                     Cell::number(format_number(total.emissions_kg))});
  sec.blocks.push_back(Block::of(std::move(ct)));
  return sec;
}

SectionBuilder section_builder(std::string_view kind) {
  // The kinds with a section of their own; any other kind's section shows its tables.
  static const std::vector<std::pair<std::string_view, SectionBuilder>> builders = {
      {"grid", grid_section}, {"pretrain", pretrain_section}, {"multitask", multitask_section}, {"search", search_section}};
  for (const auto& [name, builder] : builders)
    if (name == kind) return builder;
  return study_tables_section;
}

BuiltReport build_report(const ReportData& data, const ReportOptions& options, const std::string& generated_at) {
  SectionContext ctx;
  ctx.carbon = options.carbon;
  ctx.max_timeline_points = options.max_timeline_points;
  ctx.max_inline_timelines = options.max_inline_timelines;

  BuiltReport out;
  auto& page = out.page;
  page.title = data.studies.size() == 1 && data.other_runs.empty() ? "Energy report: " + data.studies.front().study.name
                                                                   : "Energy report";
  page.subtitle = fmt::format("{} · generated {} by powertrain", data.db_label, generated_at);

  const auto all_runs = runs_of(data);
  if (has_estimates(all_runs)) {
    // Components with an estimated in-total channel, and whether anything at all was measured.
    std::vector<std::string> est;
    bool any_measured = false;
    for (const auto* r : all_runs) {
      for (const auto& e : r->epochs) {
        for (const auto& ch : e.channels) {
          if (!ch.in_total) continue;
          if (ch.method != energy::Method::estimated) {
            any_measured = true;
          } else if (const std::string c(energy::to_string(ch.component)); std::find(est.begin(), est.end(), c) == est.end()) {
            est.push_back(c);
          }
        }
      }
    }
    const std::string what =
        !any_measured ? "Every energy number in this report is an estimate"
                      : fmt::format("Some energy numbers in this report are estimates ({} of some runs)", join(est));
    page.notices.push_back(
        "<div class=\"notice estimate\">" + badge("estimated", "estimate") + " <strong>" + html_escape(what) +
        ".</strong> " +
        html_escape("No hardware energy counter covered the estimated components: their power comes from a model of "
                    "utilization, not from a measurement, and may be off by a factor of two. Tables mark them "
                    "\"estimated\"; see Method.") +
        "</div>");
  }

  page.sections.push_back(overview_section(data, ctx));
  for (const auto& s : data.studies) {
    BuiltSection b = section_builder(s.study.kind)(s, ctx);
    for (auto& f : b.extra_figures) out.figures.push_back(std::move(f));
    page.sections.push_back(std::move(b.section));
  }
  if (!data.other_runs.empty()) {
    auto b = other_runs_section(data.other_runs, ctx);
    for (auto& f : b.extra_figures) out.figures.push_back(std::move(f));
    page.sections.push_back(std::move(b.section));
  }
  page.sections.push_back(method_section(data, ctx));
  page.sections.push_back(environment_section(data));
  for (const auto& s : page.sections) {
    for (auto& f : figures_of(s)) out.figures.push_back(std::move(f));
    for (auto& t : tables_of(s))
      if (!t.name.empty()) out.tables.push_back(std::move(t));
  }
  return out;
}

namespace {

// What the files of a report may replace in an existing OUT: report.html only
// a previous report's page (or anything, forced); the rest any regular file.
io::OutputRule rule_of(const fs::path& rel, bool force) {
  if (rel != "report.html") return io::OutputRule{};
  return io::OutputRule{"powertrain report page",
                        [](std::string_view head) {
                          return head.find("<meta name=\"generator\" content=\"powertrain report\">") != head.npos ||
                                 // pages written before the generator tag
                                 head.find("content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\"") != head.npos;
                        },
                        4096, force};
}

}  // namespace

ReportResult write_report(const ReportOptions& options) {
  energy::validate(options.carbon);
  // Refused before any work: a report page over a file that is not one.
  std::error_code dir_ec;
  if (fs::is_directory(options.out_dir, dir_ec))
    io::check_replaceable(options.out_dir / "report.html", rule_of("report.html", options.force));
  // Read everything first: a bad database or study name leaves no trace in OUT.
  auto store = store::Store::open_readonly(options.db);
  const ReportData data = load_report_data(store, options.study);
  if (data.studies.empty() && data.other_runs.empty()) {
    throw ConfigError(fmt::format("{}: nothing to report: the database has no studies and no runs", options.db.string()));
  }
  BuiltReport built = build_report(data, options, now_utc());

  ReportResult result;
  const GnuplotLocation gp = options.gnuplot ? *options.gnuplot : find_gnuplot();
  result.gnuplot_found = gp.path.has_value();
  result.figures_planned = static_cast<int>(built.figures.size());

  StagedDir staged(options.out_dir, [force = options.force](const fs::path& rel) { return rule_of(rel, force); });
  const fs::path figures_dir = staged.path() / "figures";
  const fs::path tables_dir = staged.path() / "tables";
  fs::create_directories(tables_dir);
  for (const auto& t : built.tables) write_file(tables_dir / (t.name + ".csv"), table::to_shown_csv(t));

  std::map<std::string, DrawnFigure> drawn;
  if (!gp.path) {
    result.warnings.push_back(gp.reason + "; writing tables and report.html without figures");
    for (const auto& f : built.figures) drawn[f.name] = DrawnFigure{"", gp.reason};
  } else {
    fs::create_directories(figures_dir);
    for (const auto& f : built.figures) {
      try {
        const auto r = render(*gp.path, f, figures_dir);
        drawn[f.name] = DrawnFigure{read_file(r.svg), ""};
        ++result.figures_drawn;
      } catch (const FigureError& e) {
        result.warnings.push_back(e.what());
        drawn[f.name] = DrawnFigure{"", e.what()};
      }
    }
  }
  if (!gp.path) {
    built.page.notices.insert(built.page.notices.begin(),
                              "<div class=\"notice info\"><strong>No figures.</strong> " + html_escape(gp.reason) +
                                  ". The tables below are complete; install gnuplot and run the report again for "
                                  "the figures.</div>");
  }
  write_file(staged.path() / "report.html", render_html(built.page, drawn));
  result.files = staged.commit("report.html");
  result.html = result.files.back();
  return result;
}

}  // namespace powertrain::report
