// powertrain._native: powertrain's energy layer (probing, sampler, windows) for
// Python programs. The Python package wraps Meter (powertrain.Meter) and adds
// the window() context manager; this file stays a thin translation layer.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "powertrain/energy/scope.h"
#include "powertrain/energy/registry.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/energy/types.h"
#include "powertrain/error.h"

namespace py = pybind11;
namespace energy = powertrain::energy;
using powertrain::ConfigError;

namespace {

constexpr const char* kSources[] = {"nvml", "rapl", "perf", "rails", "estimate"};

std::string str(std::string_view s) { return std::string(s); }

py::dict channel_info(const energy::ChannelInfo& c) {
  py::dict d;
  d["id"] = c.id;
  d["source"] = c.source;
  d["device"] = c.device;
  d["component"] = str(energy::to_string(c.component));
  d["method"] = str(energy::to_string(c.method));
  d["cumulative"] = c.cumulative;
  d["in_total"] = c.in_total;
  d["update_period_s"] = c.update_period_s;
  d["gpu_index"] = c.gpu_index;
  return d;
}

py::dict source_status(const energy::SourceStatus& s) {
  py::dict d;
  d["source"] = s.source;
  d["available"] = s.available;
  d["reason"] = s.reason;
  d["fix"] = s.fix;
  d["description"] = s.description;
  py::list channels;
  for (const auto& c : s.channels) channels.append(channel_info(c));
  d["channels"] = channels;
  return d;
}

py::list channel_energies(const energy::WindowResult& r) {
  py::list out;
  for (const auto& c : r.channels) {
    py::dict d;
    d["id"] = c.channel_id;
    d["device"] = c.device;
    d["component"] = str(energy::to_string(c.component));
    d["method"] = str(energy::to_string(c.method));
    d["in_total"] = c.in_total;
    d["energy_j"] = c.energy_j;
    d["machine_energy_j"] = c.machine_energy_j;
    d["avg_power_w"] = c.avg_power_w;
    d["peak_power_w"] = c.peak_power_w;
    out.append(d);
  }
  return out;
}

py::list component_energies(const energy::WindowResult& r) {
  py::list out;
  for (const auto& c : r.components) {
    py::dict d;
    d["component"] = str(energy::to_string(c.component));
    d["method"] = c.method;
    d["energy_j"] = c.energy_j;
    d["avg_power_w"] = c.avg_power_w;
    out.append(d);
  }
  return out;
}

// Honest label: any in-total channel that was estimated makes the total an estimate.
bool estimated(const energy::WindowResult& r) {
  return std::any_of(r.channels.begin(), r.channels.end(), [](const energy::ChannelEnergy& c) {
    return c.in_total && c.method == energy::Method::estimated;
  });
}

// Probes the sources and owns a started Tracker; stops it on close() and on destruction.
class Meter {
 public:
  Meter(int interval_ms, std::vector<std::string> disabled, const std::string& estimate_scope) {
    for (const auto& name : disabled)
      if (std::find(std::begin(kSources), std::end(kSources), name) == std::end(kSources))
        throw ConfigError("unknown energy source '" + name + "' (sources: nvml, rapl, perf, rails, estimate)");
    if (estimate_scope != "system" && estimate_scope != "process")
      throw ConfigError("estimate_scope must be 'system' or 'process', not '" + estimate_scope + "'");
    energy::TrackerOptions topts;
    topts.interval = std::chrono::milliseconds(interval_ms);
    energy::validate(topts);
    energy::ProbeOptions popts;
    popts.disabled = std::move(disabled);
    popts.estimate.scope = estimate_scope == "process" ? energy::EstimateModel::Scope::process
                                                       : energy::EstimateModel::Scope::system;
    popts.watched_pid = static_cast<int>(::getpid());

    py::gil_scoped_release release;  // probing and the first reading touch files and libraries
    auto probe = energy::probe_sources(popts);
    statuses_ = std::move(probe.statuses);
    if (probe.meters.empty()) {
      std::string why;
      for (const auto& s : statuses_) why += (why.empty() ? "" : "; ") + s.source + ": " + s.reason;
      throw ConfigError("no energy source is available (" + why + ")");
    }
    tracker_ = std::make_unique<energy::Tracker>(std::move(probe.meters), topts);
    // Windows are this process's own share of the machine (its process tree;
    // the Meter never moves the user's process into a cgroup).
    energy::RunScopeOptions scope;
    scope.pid = static_cast<int>(::getpid());
    scope.own_cgroup = false;
    try {
      (void)energy::attribute_run(*tracker_, scope);
    } catch (const std::exception&) {
      // No CPU time to split by: windows stay the machine's, and say nothing of a share.
    }
    tracker_->start();
  }

  py::list sources() const {
    py::list out;
    for (const auto& s : statuses_) out.append(source_status(s));
    return out;
  }

  void begin(std::string name) {
    check_open();
    py::gil_scoped_release release;
    tracker_->begin(std::move(name));
  }

  energy::WindowResult end(const std::string& name) {
    check_open();
    py::gil_scoped_release release;
    return tracker_->end(name);
  }

  void close() {
    closed_ = true;
    py::gil_scoped_release release;
    tracker_->stop();  // idempotent; the tracker lives on until the Meter goes
  }

  bool closed() const { return closed_; }

 private:
  void check_open() const {
    if (closed_) throw std::runtime_error("this powertrain Meter is closed");
  }

  std::vector<energy::SourceStatus> statuses_;
  std::unique_ptr<energy::Tracker> tracker_;
  std::atomic<bool> closed_{false};
};

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "powertrain's energy layer: meters, sampler and measurement windows";

  // The library's messages are one line; keep them as they are.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ConfigError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const powertrain::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });

  py::class_<energy::WindowResult>(m, "WindowResult", "Energy of one measurement window")
      .def_readonly("name", &energy::WindowResult::name)
      .def_readonly("energy_j", &energy::WindowResult::energy_j,
                    "this process's own share of the in-total channels, joules")
      .def_readonly("machine_energy_j", &energy::WindowResult::machine_energy_j,
                    "what the meters read for the whole machine over the window, joules")
      .def_readonly("attribution", &energy::WindowResult::attribution,
                    "how energy_j was split from machine_energy_j, e.g. 'attributed by CPU-time share'")
      .def_readonly("duration_s", &energy::WindowResult::duration_s)
      .def_readonly("avg_power_w", &energy::WindowResult::avg_power_w)
      .def_readonly("peak_power_w", &energy::WindowResult::peak_power_w)
      .def_readonly("method", &energy::WindowResult::method, "e.g. 'counter', 'sampled', 'estimated', 'counter+estimated'")
      .def_property_readonly("estimated", &estimated, "True when any in-total channel was estimated")
      .def_property_readonly("components", &component_energies)
      .def_property_readonly("channels", &channel_energies)
      .def_readonly("notes", &energy::WindowResult::notes)
      .def(
          "energy_j_of",
          [](const energy::WindowResult& r, const std::string& component) {
            double sum = 0;
            bool known = false;
            for (const auto& c : r.components)
              if (energy::to_string(c.component) == component) {
                sum += c.energy_j;
                known = true;
              }
            if (!known && component != "gpu" && component != "cpu" && component != "dram" && component != "psys" &&
                component != "board")
              throw ConfigError("unknown component '" + component + "' (gpu, cpu, dram, psys, board)");
            return sum;
          },
          py::arg("component"), "energy of one component (gpu, cpu, dram, psys, board), joules")
      .def("__repr__", [](const energy::WindowResult& r) {
        return "<WindowResult '" + r.name + "': " + py::repr(py::float_(r.energy_j)).cast<std::string>() + " J in " +
               py::repr(py::float_(r.duration_s)).cast<std::string>() + " s, " + r.method + ">";
      });

  py::class_<Meter>(m, "Meter", "Probes the energy sources and runs the sampler until closed")
      .def(py::init<int, std::vector<std::string>, const std::string&>(), py::arg("interval_ms") = 100,
           py::arg("disabled") = std::vector<std::string>{}, py::arg("estimate_scope") = "system")
      .def("sources", &Meter::sources, "every source probed, available or not, with why and how to fix it")
      .def("begin", &Meter::begin, py::arg("name"), "opens a window (names unique among open windows)")
      .def("end", &Meter::end, py::arg("name"), "closes a window and returns its WindowResult")
      .def("close", &Meter::close, "stops the sampler (idempotent)")
      .def_property_readonly("closed", &Meter::closed)
      .def("__enter__", [](Meter& self) -> Meter& { return self; }, py::return_value_policy::reference)
      .def("__exit__", [](Meter& self, const py::args&) { self.close(); });
}
