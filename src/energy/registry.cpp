#include "powertrain/energy/registry.h"

#include <algorithm>

#include "powertrain/error.h"

namespace powertrain::energy {
namespace {

bool disabled(const ProbeOptions& o, const std::string& name) {
  return std::find(o.disabled.begin(), o.disabled.end(), name) != o.disabled.end();
}

bool covers(const Meter& m, Component c) {
  for (const auto& ch : m.channels())
    if (ch.component == c && ch.in_total) return true;
  return false;
}

}  // namespace

Probe probe_sources(const ProbeOptions& options) {
  Probe probe;
  using Opener = std::unique_ptr<Meter> (*)(const ProbeOptions&, SourceStatus&);
  struct Entry {
    const char* name;
    Opener open;
  };
  const Entry entries[] = {{"nvml", open_nvml}, {"rapl", open_rapl}, {"perf", open_perf_power}, {"rails", open_rails}};

  bool cpu_measured = false, dram_measured = false, board_measured = false;
  for (const auto& e : entries) {
    SourceStatus st;
    st.source = e.name;
    if (disabled(options, e.name)) {
      st.reason = "disabled by the user";
      probe.statuses.push_back(std::move(st));
      continue;
    }
    // perf reads the same RAPL counters: only a second path when powercap failed.
    if (std::string_view(e.name) == "perf" && cpu_measured) {
      st.description = "RAPL counters through the perf power PMU";
      st.reason = "not needed: powercap RAPL zones are readable";
      probe.statuses.push_back(std::move(st));
      continue;
    }
    std::unique_ptr<Meter> m;
    try {
      m = e.open(options, st);
    } catch (const Error& err) {
      st.available = false;
      st.reason = err.what();
    }
    st.source = e.name;
    if (m) {
      st.available = true;
      st.reason.clear();
      st.channels = m->channels();
      cpu_measured = cpu_measured || covers(*m, Component::cpu);
      dram_measured = dram_measured || covers(*m, Component::dram);
      board_measured = board_measured || covers(*m, Component::board);
      probe.meters.push_back(std::move(m));
    }
    probe.statuses.push_back(std::move(st));
  }

  SourceStatus est;
  est.source = "estimate";
  est.description = "CPU and memory power from utilization with a linear model (an estimate, not a measurement)";
  // A board's input rail already includes the CPU and memory.
  const bool need_cpu = !cpu_measured && !board_measured;
  const bool need_mem = !dram_measured && !board_measured;
  if (disabled(options, "estimate") || !options.estimate_missing) {
    est.reason = "disabled by the user";
  } else if (!need_cpu && !need_mem) {
    est.reason = "not needed: measured sources cover the CPU and memory";
  } else {
    try {
      std::unique_ptr<UsageSource> usage;
      if (options.estimate.scope == EstimateModel::Scope::process) {
        if (options.watched_pid <= 0) throw ConfigError("process-scope estimate needs a process id");
        usage = process_usage(options.proc_root, options.watched_pid);
      } else {
        usage = system_usage(options.proc_root, options.sysfs_root);
      }
      auto m = make_estimate_meter(options.estimate, std::move(usage), need_cpu, need_mem);
      est.available = true;
      est.channels = m->channels();
      probe.meters.push_back(std::move(m));
    } catch (const SourceError& e) {
      est.reason = e.what();
    }
  }
  probe.statuses.push_back(std::move(est));
  return probe;
}

const std::vector<std::string>& source_names() {
  static const std::vector<std::string> names{"nvml", "rapl", "perf", "rails", "estimate"};
  return names;
}

void check_source_names(const std::vector<std::string>& disabled) {
  const auto& known = source_names();
  for (const auto& d : disabled)
    if (std::find(known.begin(), known.end(), d) == known.end())
      throw ConfigError("--disable: no energy source named '" + d + "' (nvml, rapl, perf, rails or estimate)");
}

}  // namespace powertrain::energy
