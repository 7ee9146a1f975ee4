#include "powertrain/energy/measurement.h"

#include <algorithm>
#include <cmath>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

std::string join_methods(const std::set<Method>& ms) {
  std::string out;
  for (Method m : {Method::counter, Method::sampled, Method::estimated}) {
    if (!ms.count(m)) continue;
    if (!out.empty()) out += '+';
    out += to_string(m);
  }
  return out.empty() ? "none" : out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string fmt_num(double v) { return std::isnan(v) ? std::string() : fmt::format("{}", v); }

std::string quote_command(const std::vector<std::string>& cmd) {
  std::string out;
  for (const auto& a : cmd) {
    if (!out.empty()) out += ' ';
    out += a.find_first_of(" \t'\"") == std::string::npos ? a : "'" + a + "'";
  }
  return out;
}

}  // namespace

namespace {
double rusage_s(int who) {
  rusage u{};
  if (getrusage(who, &u) != 0) return 0.0;
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}
}  // namespace

CpuSnapshot cpu_snapshot(UsageSource& machine) {
  CpuSnapshot s;
  s.machine_busy_s = machine.cpu_busy_seconds();
  s.command_s = rusage_s(RUSAGE_CHILDREN);
  s.powertrain_s = rusage_s(RUSAGE_SELF);
  return s;
}

CpuShare cpu_share(const CpuSnapshot& begin, const CpuSnapshot& end) {
  CpuShare c;
  c.machine_s = std::max(0.0, end.machine_busy_s - begin.machine_busy_s);
  c.command_s = std::max(0.0, end.command_s - begin.command_s);
  c.powertrain_s = std::max(0.0, end.powertrain_s - begin.powertrain_s);
  c.others_s = std::max(0.0, c.machine_s - c.command_s - c.powertrain_s);
  c.others_share = c.machine_s > 0 ? c.others_s / c.machine_s : 0.0;
  c.material = material_interference(c.others_s, c.machine_s);
  return c;
}

bool in_host_pid_namespace(const std::filesystem::path& proc_root) {
  // The initial PID namespace has a fixed inode, PROC_PID_INIT_INO (0xEFFFFFFC).
  std::error_code ec;
  const auto target = std::filesystem::read_symlink(proc_root / "self/ns/pid", ec);
  return !ec && target.string() == "pid:[4026531836]";
}

void decide_gpu_use(Measurement& m, const std::vector<GpuProcessLog>& log, const std::set<std::uint32_t>& tree,
                    bool host_pids) {
  m.gpu_use.assign(m.window.channels.size(), GpuUse::unknown);
  m.gpu_use_why.assign(m.window.channels.size(), std::string());
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    if (m.window.channels[i].component != Component::gpu) continue;
    std::string& why = m.gpu_use_why[i];
    // A source that cannot tell (a Jetson's GPU rail): unknown, as it always is there.
    if (i >= log.size() || !log[i].supported) continue;
    const GpuProcessLog& l = log[i];
    bool ours = false;
    for (auto pid : l.pids) ours = ours || tree.count(pid) > 0;
    if (ours) {
      m.gpu_use[i] = GpuUse::used;
    } else if (l.failures > 0) {
      // One unreadable list may have been the one that held the command.
      why = "its process list could not be read (" + l.error + ")";
    } else if (l.lists == 0) {
      why = "no process list was read while the command ran";
    } else if (!host_pids) {
      why = "NVML reports the host's process ids, and powertrain runs in another PID namespace (a container), so "
            "they cannot be compared with the command's";
    } else {
      m.gpu_use[i] = GpuUse::unused;
    }
  }
}

void name_gpus(Measurement& m, const std::vector<unsigned>& named, const std::vector<ChannelInfo>& channels,
               bool launches_elsewhere) {
  for (std::size_t i = 0; i < m.window.channels.size() && i < m.gpu_use.size(); ++i) {
    if (m.window.channels[i].component != Component::gpu) continue;
    const int index = i < channels.size() ? channels[i].gpu_index : -1;
    if (index >= 0 && std::find(named.begin(), named.end(), static_cast<unsigned>(index)) != named.end()) {
      m.gpu_use[i] = GpuUse::used;
      m.gpu_use_why[i].clear();
    } else if (launches_elsewhere && m.gpu_use[i] == GpuUse::unused) {
      m.gpu_use[i] = GpuUse::unknown;
      m.gpu_use_why[i] =
          "the command starts its work outside its own process tree (a container, srun), so the GPU's processes "
          "cannot be matched to it; name the GPUs it uses with --gpus";
    }
  }
}

void attribute(Measurement& m, const std::vector<TimelineSample>& timeline) {
  std::set<Method> methods;
  m.energy_j = 0.0;
  m.excluded_gpu_energy_j = 0.0;
  bool partial = false;
  // Channels in energy_j: in-total ones, GPUs the command did not use left out.
  auto counted = [&m](const std::vector<ChannelEnergy>& channels, std::size_t i) {
    if (i >= channels.size() || !channels[i].in_total) return false;
    const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
    return !(channels[i].component == Component::gpu && use == GpuUse::unused);
  };
  bool excluded = false;
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    const auto& c = m.window.channels[i];
    if (!c.in_total) continue;
    if (!counted(m.window.channels, i)) {
      m.excluded_gpu_energy_j += c.machine_energy_j > 0 ? c.machine_energy_j : c.energy_j;
      excluded = true;
      continue;
    }
    m.energy_j += c.energy_j;
    methods.insert(c.method);
    partial = partial || c.partial;
  }
  m.method = join_methods(methods) + (partial ? ", partial" : "");
  if (!m.window.attribution.empty()) m.method += ", " + m.window.attribution;
  m.machine_energy_j = m.window.machine_energy_j > 0 ? m.window.machine_energy_j : m.window.energy_j;

  // The tracker's peak sums every in-total channel; without the GPUs left out
  // it comes from the timeline, over the same channels as energy_j.
  m.peak_power_w = m.window.peak_power_w;
  if (excluded) {
    double peak = 0.0;
    bool any = false;
    for (const auto& s : timeline) {
      if (s.t_ns <= m.window.start_ns || s.t_ns > m.window.end_ns) continue;
      double sum = 0.0;
      for (std::size_t i = 0; i < s.power_w.size(); ++i)
        if (counted(m.window.channels, i) && !std::isnan(s.power_w[i])) sum += s.power_w[i];
      peak = std::max(peak, sum);
      any = true;
    }
    if (!any)  // no sample inside the window: the highest of the counted channels' own peaks
      for (std::size_t i = 0; i < m.window.channels.size(); ++i)
        if (counted(m.window.channels, i)) peak = std::max(peak, m.window.channels[i].peak_power_w);
    m.peak_power_w = peak;
  }
  // A peak below the average is one no sample resolved (a command shorter
  // than the sampling interval, or one whose power came from a counter read
  // at its ends only): the average is the least the peak was, and is shown
  // as such.
  if (m.window.duration_s > 0.0) {
    const double avg = m.energy_j / m.window.duration_s;
    if (m.peak_power_w < avg) {
      m.peak_power_w = avg;
      const std::string note = "the peak power is not resolved (the run was shorter than the samples could follow): "
                               "shown as the average, which it was at least";
      if (std::find(m.window.notes.begin(), m.window.notes.end(), note) == m.window.notes.end())
        m.window.notes.push_back(note);
    }
  }

  // The idle baseline of the same channels: an idle GPU the command did not
  // use is not subtracted from an energy that no longer holds it.
  m.idle_power_w.reset();
  m.energy_above_idle_j.reset();
  if (m.idle) {
    double idle_w = 0.0;
    for (std::size_t i = 0; i < m.idle->channels.size(); ++i)
      if (counted(m.idle->channels, i)) idle_w += m.idle->channels[i].avg_power_w;
    m.idle_power_w = idle_w;
    m.energy_above_idle_j = std::max(0.0, m.energy_j - idle_w * m.window.duration_s);
  }
}

std::string to_text(const Measurement& m) {
  std::string out;
  const auto& w = m.window;
  out += fmt::format("powertrain: `{}` exited with {} after {:.3f} s\n", quote_command(m.command), m.exit_code,
                     w.duration_s);
  out += fmt::format("energy {:.3f} J ({:.6f} kWh), average {:.2f} W, peak {:.2f} W, method: {}\n", m.energy_j,
                     m.energy_j / 3.6e6, w.duration_s > 0 ? m.energy_j / w.duration_s : 0.0, m.peak_power_w,
                     m.method);
  out += fmt::format("{:<10} {:<42} {:<17} {:>12} {:>10} {:>10}  {}\n", "component", "device", "method", "energy_J",
                     "avg_W", "peak_W", "note");
  for (std::size_t i = 0; i < w.channels.size(); ++i) {
    const auto& c = w.channels[i];
    std::string note;
    if (!c.in_total) note = "part of another row, not added";
    const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
    if (c.component == Component::gpu)
      note = use == GpuUse::used ? "used by the command"
             : use == GpuUse::unused ? "not used by the command, not added"
                                     : "use by the command unknown, added";
    out += fmt::format("{:<10} {:<42} {:<17} {:>12.3f} {:>10.2f} {:>10.2f}  {}\n", to_string(c.component),
                       c.device.substr(0, 42), method_label(c), c.energy_j, c.avg_power_w, c.peak_power_w, note);
  }
  for (std::size_t i = 0; i < w.channels.size() && i < m.gpu_use_why.size(); ++i)
    if (!m.gpu_use_why[i].empty())
      out += fmt::format("note: whether the command used {} is unknown: {}; its energy stays in the total\n",
                         w.channels[i].device, m.gpu_use_why[i]);
  if (m.excluded_gpu_energy_j > 0)
    out += fmt::format("GPUs the command did not use drew {:.3f} J, left out of the total\n", m.excluded_gpu_energy_j);
  if (m.idle && m.energy_above_idle_j)
    out += fmt::format("idle baseline {:.2f} W over {:.1f} s (of the channels in the total); energy above idle {:.3f} J\n",
                       m.idle_power_w.value_or(m.idle->avg_power_w), m.idle->duration_s, *m.energy_above_idle_j);
  out += fmt::format("carbon {:.3f} g CO2e = {:.6f} kWh x PUE {:.2f} x {:.0f} g/kWh ({})\n",
                     m.carbon.emissions_kg * 1000.0, m.carbon.energy_kwh, m.carbon.pue,
                     m.carbon.intensity_g_per_kwh, m.carbon.intensity_source);
  if (m.method.find("estimated") != std::string::npos)
    out += fmt::format(
        "note: figures marked 'estimated' were not measured: no energy counter covers them on this machine; they come "
        "from a linear model of CPU utilization ({} scope) and memory in use\n",
        m.estimate_scope.empty() ? "system" : m.estimate_scope);
  for (const auto& n : w.notes) out += "note: " + n + "\n";
  if (!m.attribution.empty())
    out += fmt::format("note: the command's own energy; the meters read {:.3f} J for the whole machine ({})\n",
                       m.machine_energy_j, m.attribution);
  if (m.cpu && m.cpu->material)
    out += fmt::format(
        "note: other processes used {:.1f} CPU-s ({:.0f}%) of the {:.1f} CPU-s the machine was busy (the command "
        "{:.1f}, powertrain {:.1f}); the counters are machine-wide, so the energy above is the command's share of "
        "them, not a separate measurement\n",
        m.cpu->others_s, 100.0 * m.cpu->others_share, m.cpu->machine_s, m.cpu->command_s, m.cpu->powertrain_s);
  if (!m.epochs.empty()) {
    out += fmt::format("{:>6} {:>10} {:>12} {:>12} {:>12} {:>10}  {}\n", "epoch", "seconds", "energy_J", "train_J",
                       "eval_J", "val_metric", "method (epochs the command reported)");
    for (const auto& e : m.epochs)
      out += fmt::format("{:>6} {:>10.3f} {:>12.3f} {:>12.3f} {:>12.3f} {:>10.4f}  {}\n", e.epoch, e.duration_s,
                         e.energy_j, e.train_energy_j, e.eval_energy_j, e.val_metric, e.method);
  }
  if (!m.epochs_note.empty()) out += "note: the epoch breakdown stopped: " + m.epochs_note + "\n";
  if (m.nodes) {
    const auto& n = *m.nodes;
    out += fmt::format("{:>6} {:<24} {:>10} {:>12} {:>12} {:>5}  {}\n", "node", "host", "seconds", "energy_J",
                       "machine_J", "exit", n.nodes > 1 ? "method (one meter per node)" : "method (one meter on this node)");
    for (const auto& x : n.per_node) {
      if (!x.reported) {
        out += fmt::format("{:>6} {:<24} {:>10} {:>12} {:>12} {:>5}  no report from this node\n", x.node, "", "-",
                           "-", "-", "-");
        continue;
      }
      out += fmt::format("{:>6} {:<24} {:>10.3f} {:>12.3f} {:>12.3f} {:>5}  {}\n", x.node, x.host.substr(0, 24),
                         x.duration_s, x.energy_j, x.machine_energy_j, x.exit_code, x.method);
    }
    out += fmt::format("{:>6} {:<24} {:>10.3f} {:>12.3f} {:>12.3f} {:>5}  {}\n", "all",
                       fmt::format("{} node{}", n.nodes, n.nodes == 1 ? "" : "s"), n.duration_s, n.energy_j,
                       n.machine_energy_j, "", n.method);
    if (n.nodes > 1)
      out += fmt::format("all nodes: {:.3f} J ({:.6f} kWh, {:.3f} g CO2e), the longest node {:.3f} s{}\n", n.energy_j,
                         n.energy_j / 3.6e6, n.emissions_kg * 1000.0, n.duration_s,
                         n.partial ? "; partial: a node is missing or covers only part of the run" : "");
  }
  return out;
}

nlohmann::json to_json(const Measurement& m) {
  using nlohmann::json;
  json channels = json::array();
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    const auto& c = m.window.channels[i];
    json j{{"id", c.channel_id},       {"device", c.device},           {"component", to_string(c.component)},
           {"method", to_string(c.method)}, {"in_total", c.in_total},  {"energy_j", c.energy_j},
           {"avg_power_w", c.avg_power_w},  {"peak_power_w", c.peak_power_w},
           {"machine_energy_j", c.machine_energy_j}};
    if (!c.attribution.empty()) j["attribution"] = c.attribution;
    if (c.component == Component::gpu) {
      const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
      j["used_by_command"] = use == GpuUse::used ? json(true) : use == GpuUse::unused ? json(false) : json(nullptr);
      if (i < m.gpu_use_why.size() && !m.gpu_use_why[i].empty()) j["use_note"] = m.gpu_use_why[i];
    }
    if (c.partial) {
      j["partial"] = true;
      j["covered_s"] = c.covered_s;
      j["error"] = c.error;
    }
    channels.push_back(j);
  }
  json components = json::array();
  for (const auto& c : m.window.components)
    components.push_back({{"component", to_string(c.component)}, {"method", c.method}, {"energy_j", c.energy_j},
                          {"avg_power_w", c.avg_power_w}});
  json sources = json::array();
  for (const auto& s : m.sources)
    sources.push_back({{"source", s.source}, {"available", s.available}, {"reason", s.reason}, {"fix", s.fix}});
  json epochs = json::array();
  for (const auto& e : m.epochs)
    epochs.push_back({{"epoch", e.epoch},
                      {"duration_s", e.duration_s},
                      {"energy_j", e.energy_j},
                      {"train_energy_j", e.train_energy_j},
                      {"eval_energy_j", e.eval_energy_j},
                      {"val_metric", std::isnan(e.val_metric) ? json(nullptr) : json(e.val_metric)},
                      {"method", e.method}});
  json out{{"schema", "powertrain.measure/1"},
           {"epochs", epochs},
           {"epochs_note", m.epochs_note},
           {"run_id", m.run_id},
           {"timestamp", m.timestamp_utc},
           {"command", m.command},
           {"exit_code", m.exit_code},
           {"duration_s", m.window.duration_s},
           {"energy_j", m.energy_j},
           {"machine_energy_j", m.machine_energy_j},
           {"attribution", m.attribution},
           {"method", m.method},
           {"avg_power_w", m.window.duration_s > 0 ? m.energy_j / m.window.duration_s : 0.0},
           {"peak_power_w", m.peak_power_w},
           {"excluded_gpu_energy_j", m.excluded_gpu_energy_j},
           {"components", components},
           {"channels", channels},
           {"carbon",
            {{"energy_kwh", m.carbon.energy_kwh},
             {"pue", m.carbon.pue},
             {"intensity_g_per_kwh", m.carbon.intensity_g_per_kwh},
             {"intensity_source", m.carbon.intensity_source},
             {"emissions_kg", m.carbon.emissions_kg}}},
           {"sampling_interval_s", m.interval_s},
           {"notes", m.window.notes},
           {"sources", sources},
           {"host",
            {{"hostname", m.host.hostname},
             {"os", m.host.os},
             {"cpu_model", m.host.cpu_model},
             {"cpu_count", m.host.cpu_count},
             {"ram_total_gb", m.host.ram_total_gb}}}};
  if (!m.estimate_scope.empty()) out["estimate_scope"] = m.estimate_scope;
  if (m.nodes) {
    json per_node = json::array();
    for (const auto& x : m.nodes->per_node) {
      json j{{"node", x.node}, {"reported", x.reported}};
      if (x.reported) {
        j["host"] = x.host;
        j["exit_code"] = x.exit_code;
        j["duration_s"] = x.duration_s;
        j["energy_j"] = x.energy_j;
        j["machine_energy_j"] = x.machine_energy_j;
        j["method"] = x.method;
      }
      per_node.push_back(std::move(j));
    }
    out["nodes"] = {{"nodes", m.nodes->nodes},
                    {"per_node", per_node},
                    {"total",
                     {{"duration_s", m.nodes->duration_s},
                      {"energy_j", m.nodes->energy_j},
                      {"machine_energy_j", m.nodes->machine_energy_j},
                      {"method", m.nodes->method},
                      {"partial", m.nodes->partial},
                      {"emissions_kg", m.nodes->emissions_kg}}}};
  }
  if (m.cpu)
    out["cpu_time"] = {{"machine_s", m.cpu->machine_s},       {"command_s", m.cpu->command_s},
                       {"powertrain_s", m.cpu->powertrain_s}, {"others_s", m.cpu->others_s},
                       {"others_share", m.cpu->others_share}, {"interference", m.cpu->material}};
  if (m.idle) {
    // avg_power_w: the baseline subtracted, of the channels in energy_j.
    out["idle"] = {{"duration_s", m.idle->duration_s},
                   {"avg_power_w", m.idle_power_w.value_or(m.idle->avg_power_w)},
                   {"method", m.idle->method}};
    if (m.energy_above_idle_j) out["energy_above_idle_j"] = *m.energy_above_idle_j;
  }
  return out;
}

const std::vector<std::string>& codecarbon_columns() {
  static const std::vector<std::string> cols = {
      "timestamp",     "project_name",  "run_id",           "experiment_id", "duration",
      "emissions",     "emissions_rate", "cpu_power",       "gpu_power",     "ram_power",
      "cpu_energy",    "gpu_energy",    "ram_energy",       "energy_consumed", "country_name",
      "country_iso_code", "region",     "cloud_provider",   "cloud_region",  "os",
      "python_version", "codecarbon_version", "cpu_count",  "cpu_model",     "gpu_count",
      "gpu_model",     "longitude",     "latitude",         "ram_total_size", "tracking_mode",
      "on_cloud",      "pue",           "powertrain_method"};
  return cols;
}

std::string codecarbon_row(const Measurement& m) {
  const double dur = m.window.duration_s;
  double cpu_j = 0, gpu_j = 0, ram_j = 0;
  int gpu_count = 0;
  std::string gpu_model;
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    const auto& c = m.window.channels[i];
    if (c.component == Component::gpu) {
      const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
      if (use == GpuUse::unused) continue;
      ++gpu_count;
      if (gpu_model.empty()) gpu_model = c.device;
    }
    if (!c.in_total) continue;
    switch (c.component) {
      case Component::gpu: gpu_j += c.energy_j; break;
      case Component::dram: ram_j += c.energy_j; break;
      default: cpu_j += c.energy_j; break;  // cpu, psys, board: CodeCarbon has no better column
    }
  }
  const double kwh = 1.0 / 3.6e6;
  std::vector<std::string> f = {
      m.timestamp_utc,
      m.project_name,
      m.run_id,
      m.experiment_id,
      fmt_num(dur),
      fmt_num(m.carbon.emissions_kg),
      fmt_num(dur > 0 ? m.carbon.emissions_kg / dur : 0.0),
      fmt_num(dur > 0 ? cpu_j / dur : 0.0),
      fmt_num(dur > 0 ? gpu_j / dur : 0.0),
      fmt_num(dur > 0 ? ram_j / dur : 0.0),
      fmt_num(cpu_j * kwh),
      fmt_num(gpu_j * kwh),
      fmt_num(ram_j * kwh),
      fmt_num(m.energy_j * kwh),
      m.region_name,
      m.region_code,
      "",
      "",
      "",
      m.host.os,
      "",
      "",
      std::to_string(m.host.cpu_count),
      m.host.cpu_model,
      std::to_string(gpu_count),
      gpu_model,
      "",
      "",
      fmt_num(m.host.ram_total_gb),
      m.estimate_scope == "process" ? "process" : "machine",
      "N",
      fmt_num(m.carbon.pue),
      m.method};
  std::string row;
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (i) row += ',';
    row += csv_field(f[i]);
  }
  return row;
}

std::string codecarbon_header() {
  std::string text;
  const auto& cols = codecarbon_columns();
  for (std::size_t i = 0; i < cols.size(); ++i) text += (i ? "," : "") + cols[i];
  return text;
}

io::OutputRule report_output_rule(bool force) {
  // A previous report of measure, as text or as JSON.
  return io::OutputRule{"powertrain measure report",
                        [](std::string_view head) {
                          return head.rfind("powertrain: `", 0) == 0 ||
                                 (head.rfind("{", 0) == 0 &&
                                  head.find("\"schema\": \"powertrain.measure/") != std::string_view::npos);
                        },
                        64u << 20, force};
}

io::OutputRule timeline_output_rule(bool force) {
  return io::OutputRule{"powertrain timeline",
                        [](std::string_view head) { return head.rfind("t_s\n", 0) == 0 || head.rfind("t_s,", 0) == 0; },
                        64 * 1024, force};
}

void append_codecarbon_csv(const std::filesystem::path& path, const Measurement& m) {
  io::append_csv(path, codecarbon_header(), codecarbon_row(m) + '\n');
}

void write_timeline_csv(const std::filesystem::path& path, const std::vector<ChannelInfo>& channels,
                        const std::vector<TimelineSample>& timeline, std::int64_t origin_ns, bool force) {
  std::ostringstream out;
  {
    out << "t_s";
    for (const auto& c : channels) out << ',' << c.id << ":power_w";
    for (const auto& c : channels) {
      if (c.component != Component::gpu) continue;
      for (const char* k : {"power_limit_w", "utilization_pct", "sm_clock_mhz", "temperature_c", "memory_used_bytes"})
        out << ',' << c.id << ':' << k;
    }
    out << '\n';
    for (const auto& s : timeline) {
      out << fmt::format("{:.4f}", static_cast<double>(s.t_ns - origin_ns) * 1e-9);
      for (std::size_t i = 0; i < channels.size(); ++i) out << ',' << fmt_num(i < s.power_w.size() ? s.power_w[i] : kNaN);
      for (std::size_t i = 0; i < channels.size(); ++i) {
        if (channels[i].component != Component::gpu) continue;
        const GpuTelemetry g = i < s.gpu.size() ? s.gpu[i] : GpuTelemetry{};
        out << ',' << fmt_num(g.power_limit_w) << ',' << fmt_num(g.utilization_pct) << ',' << fmt_num(g.sm_clock_mhz)
            << ',' << fmt_num(g.temperature_c) << ',' << fmt_num(g.memory_used_bytes);
      }
      out << '\n';
    }
  }
  io::write_output(path, out.str(), timeline_output_rule(force));
}

}  // namespace powertrain::energy
