#include "powertrain/energy/measurement.h"

#include <cmath>

#include <fcntl.h>
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

void attribute(Measurement& m) {
  std::set<Method> methods;
  m.energy_j = 0.0;
  m.excluded_gpu_energy_j = 0.0;
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    const auto& c = m.window.channels[i];
    if (!c.in_total) continue;
    const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
    if (c.component == Component::gpu && use == GpuUse::unused) {
      m.excluded_gpu_energy_j += c.energy_j;
      continue;
    }
    m.energy_j += c.energy_j;
    methods.insert(c.method);
  }
  m.method = join_methods(methods);
}

std::string to_text(const Measurement& m) {
  std::string out;
  const auto& w = m.window;
  out += fmt::format("powertrain: `{}` exited with {} after {:.3f} s\n", quote_command(m.command), m.exit_code,
                     w.duration_s);
  out += fmt::format("energy {:.3f} J ({:.6f} kWh), average {:.2f} W, peak {:.2f} W, method: {}\n", m.energy_j,
                     m.energy_j / 3.6e6, w.duration_s > 0 ? m.energy_j / w.duration_s : 0.0, w.peak_power_w,
                     m.method);
  out += fmt::format("{:<10} {:<42} {:<10} {:>12} {:>10} {:>10}  {}\n", "component", "device", "method", "energy_J",
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
    out += fmt::format("{:<10} {:<42} {:<10} {:>12.3f} {:>10.2f} {:>10.2f}  {}\n", to_string(c.component),
                       c.device.substr(0, 42), to_string(c.method), c.energy_j, c.avg_power_w, c.peak_power_w, note);
  }
  if (m.excluded_gpu_energy_j > 0)
    out += fmt::format("GPUs the command did not use drew {:.3f} J, left out of the total\n", m.excluded_gpu_energy_j);
  if (m.idle && m.energy_above_idle_j)
    out += fmt::format("idle baseline {:.2f} W over {:.1f} s; energy above idle {:.3f} J\n", m.idle->avg_power_w,
                       m.idle->duration_s, *m.energy_above_idle_j);
  out += fmt::format("carbon {:.3f} g CO2e = {:.6f} kWh x PUE {:.2f} x {:.0f} g/kWh ({})\n",
                     m.carbon.emissions_kg * 1000.0, m.carbon.energy_kwh, m.carbon.pue,
                     m.carbon.intensity_g_per_kwh, m.carbon.intensity_source);
  if (m.method.find("estimated") != std::string::npos)
    out += fmt::format(
        "note: figures marked 'estimated' were not measured: no energy counter covers them on this machine; they come "
        "from a linear model of CPU utilization ({} scope) and memory in use\n",
        m.estimate_scope.empty() ? "system" : m.estimate_scope);
  for (const auto& n : w.notes) out += "note: " + n + "\n";
  if (!m.epochs.empty()) {
    out += fmt::format("{:>6} {:>10} {:>12} {:>12} {:>12} {:>10}  {}\n", "epoch", "seconds", "energy_J", "train_J",
                       "eval_J", "val_metric", "method (epochs the command reported)");
    for (const auto& e : m.epochs)
      out += fmt::format("{:>6} {:>10.3f} {:>12.3f} {:>12.3f} {:>12.3f} {:>10.4f}  {}\n", e.epoch, e.duration_s,
                         e.energy_j, e.train_energy_j, e.eval_energy_j, e.val_metric, e.method);
  }
  if (!m.epochs_note.empty()) out += "note: the epoch breakdown stopped: " + m.epochs_note + "\n";
  return out;
}

nlohmann::json to_json(const Measurement& m) {
  using nlohmann::json;
  json channels = json::array();
  for (std::size_t i = 0; i < m.window.channels.size(); ++i) {
    const auto& c = m.window.channels[i];
    json j{{"id", c.channel_id},       {"device", c.device},           {"component", to_string(c.component)},
           {"method", to_string(c.method)}, {"in_total", c.in_total},  {"energy_j", c.energy_j},
           {"avg_power_w", c.avg_power_w},  {"peak_power_w", c.peak_power_w}};
    if (c.component == Component::gpu) {
      const GpuUse use = i < m.gpu_use.size() ? m.gpu_use[i] : GpuUse::unknown;
      j["used_by_command"] = use == GpuUse::used ? json(true) : use == GpuUse::unused ? json(false) : json(nullptr);
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
           {"method", m.method},
           {"avg_power_w", m.window.duration_s > 0 ? m.energy_j / m.window.duration_s : 0.0},
           {"peak_power_w", m.window.peak_power_w},
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
  if (m.idle) {
    out["idle"] = {{"duration_s", m.idle->duration_s}, {"avg_power_w", m.idle->avg_power_w}, {"method", m.idle->method}};
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

void check_writable(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw IoError(path.string() + ": is a directory");
  if (fs::exists(path, ec)) {
    if (access(path.c_str(), W_OK) != 0) throw IoError(path.string() + ": not writable: " + std::strerror(errno));
    return;
  }
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) throw IoError(path.string() + ": directory " + dir.string() + " does not exist");
  if (access(dir.c_str(), W_OK) != 0)
    throw IoError(path.string() + ": directory " + dir.string() + " is not writable: " + std::strerror(errno));
}

void append_codecarbon_csv(const std::filesystem::path& path, const Measurement& m) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(path.string() + ": " + std::strerror(errno));
  std::string text;
  struct stat st {};
  if (fstat(fd, &st) == 0 && st.st_size == 0) {
    const auto& cols = codecarbon_columns();
    for (std::size_t i = 0; i < cols.size(); ++i) text += (i ? "," : "") + cols[i];
    text += '\n';
  }
  text += codecarbon_row(m) + '\n';
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) throw IoError(path.string() + ": write failed: " + std::strerror(err));
}

void write_timeline_csv(const std::filesystem::path& path, const std::vector<ChannelInfo>& channels,
                        const std::vector<TimelineSample>& timeline, std::int64_t origin_ns) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw IoError(path.string() + ": cannot write the timeline");
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
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp);
      throw IoError(path.string() + ": write failed");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IoError(path.string() + ": " + ec.message());
  }
}

}  // namespace powertrain::energy
