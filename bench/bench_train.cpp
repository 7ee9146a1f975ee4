// Training throughput of powertrain's C++ engine against the same model and loop
// in Python PyTorch (bench/train_python.py), side by side in one run.
//
//   build/bench/bench_train [--workloads image,sensor] [--batches 1,4,16,64,256,512]
//                           [--threads N] [--repeats 3] [--seconds 2] [--modes tuned,compile]
//                           [--device cpu|cuda|cuda:N]
//                           [--python PYTHON] [--script bench/train_python.py]
//
// For every workload and batch size each side trains the same number of random
// in-memory samples (calibrated to take about --seconds in C++) for two epochs
// and reports the samples per second of its second epoch's training phase (the
// first warms allocators and kernels, and compiles), and of the whole run from
// the model's creation on (end to end, a compile included). The Python side
// runs in the forms --modes names (train_python.py: tuned eager, torch.compile,
// plain eager). Trials alternate C++ and each Python form so that drift on a
// shared machine hits all; medians and ratios are printed as Markdown tables.
// --device runs both sides on a GPU (the engine holds the splits on the device,
// and so does the Python side).
//
// The C++ side is the real engine: train::Trainer with a Tracker (no meters:
// energy is not the point here), exactly as `powertrain train` runs it.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "powertrain/data/dataset.h"
#include "powertrain/energy/tracker.h"
#include "powertrain/models/model.h"
#include "powertrain/train/memory.h"
#include "powertrain/train/trainer.h"

namespace {

using namespace powertrain;

struct Workload {
  std::string name;    // as train_python.py names it
  std::string model;   // powertrain model
  std::vector<std::int64_t> shape;
  std::int64_t classes;
};

// Fashion-MNIST images; PAMAP2 windows (18 IMU channels, 256 samples, 12 activities).
const std::vector<Workload>& workloads() {
  static const std::vector<Workload> w{{"image", "image-cnn", {1, 28, 28}, 10},
                                       {"sensor", "sensor-cnn", {18, 256}, 12}};
  return w;
}

const Workload& workload_named(const std::string& name) {
  for (const auto& w : workloads())
    if (w.name == name) return w;
  throw std::runtime_error("unknown workload '" + name + "' (known: image, sensor)");
}

data::Split random_split(const Workload& w, std::int64_t n) {
  auto shape = w.shape;
  shape.insert(shape.begin(), n);
  return {torch::randn(shape), torch::randint(0, w.classes, {n}, torch::kLong)};
}

class LastEpoch final : public run::RunObserver {
 public:
  void on_epoch(const run::EpochRecord& e) override { samples_per_s = e.samples_per_s; }
  double samples_per_s = 0.0;
};

struct Settings {
  std::string device = "cpu";
  int threads = 0;
  double lr = 0.01, momentum = 0.9;
  std::uint64_t seed = 1;
};

struct Rates {
  double epoch = 0.0;       // samples/s of the second epoch's training phase
  double end_to_end = 0.0;  // samples/s of both epochs from the model's creation on
};

// Two epochs of the engine over n random samples.
Rates cpp_trial(const Workload& w, std::int64_t batch, std::int64_t n, const Settings& s) {
  torch::manual_seed(s.seed);
  data::Dataset d;
  d.name = "random";
  d.synthetic = true;
  d.modality = w.shape.size() == 3 ? data::Dataset::Modality::image : data::Dataset::Modality::sensor;
  for (std::int64_t c = 0; c < w.classes; ++c) d.labels.push_back(std::to_string(c));
  d.train = random_split(w, n);
  d.val = random_split(w, std::min<std::int64_t>(n, 64));
  run::RunConfig c;
  c.dataset = "random";
  c.model = w.model;
  c.optimizer = "sgd";
  c.learning_rate = s.lr;
  c.momentum = s.momentum;
  c.batch_size = batch;
  c.max_epochs = 2;
  c.patience = 0;
  c.seed = s.seed;
  c.threads = s.threads;
  c.device = s.device;
  energy::Tracker tracker({});
  LastEpoch last;
  const auto start = std::chrono::steady_clock::now();
  train::train_run(c, d, tracker, last);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {last.samples_per_s, 2.0 * static_cast<double>(n) / seconds};
}

std::string run_capture(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  const int rc = ::pclose(pipe.release());
  if (rc != 0) throw std::runtime_error("failed (status " + std::to_string(rc) + "): " + command);
  return out;
}

struct Python {
  std::string exe, script, env;
  nlohmann::json call(const std::string& args) const {
    // The script prints one JSON object, on its last line.
    return nlohmann::json::parse(run_capture(fmt::format("{}'{}' '{}' {}", env, exe, script, args)));
  }
};

Rates python_trial(const Python& py, const std::string& mode, const Workload& w, std::int64_t batch, std::int64_t n,
                   const Settings& s) {
  const auto r = py.call(fmt::format("--workload {} --batch {} --samples {} --threads {} --epochs 2 --seed {} --lr {} "
                                     "--momentum {} --mode {} --device {}",
                                     w.name, batch, n, s.threads, s.seed, s.lr, s.momentum, mode, s.device));
  return {r.at("samples_per_s").get<double>(), r.at("end_to_end_samples_per_s").get<double>()};
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto k = v.size();
  return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Training throughput: powertrain's C++ engine against the same loop in Python PyTorch"};
  std::string workload_list = "image,sensor", batch_list = "1,4,16,64,256,512";
  std::string python = POWERTRAIN_BENCH_PYTHON, script = POWERTRAIN_BENCH_DIR "/train_python.py";
  Settings s;
  int repeats = 3;
  double seconds = 2.0;
  app.add_option("--workloads", workload_list, "comma-separated: image, sensor");
  app.add_option("--batches", batch_list, "comma-separated batch sizes");
  app.add_option("--threads", s.threads, "threads on both sides; 0: every CPU this process may use");
  app.add_option("--device", s.device, "where both sides train: cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--repeats", repeats, "alternating trials per side")->check(CLI::PositiveNumber);
  app.add_option("--seconds", seconds, "target length of one C++ epoch")->check(CLI::PositiveNumber);
  std::string mode_list = "tuned,compile";
  bool same_allocator = true;
  app.add_flag("!--python-default-allocator", same_allocator,
               "run Python with glibc's default allocator settings instead of the engine's");
  app.add_option("--modes", mode_list, "Python forms, comma-separated: tuned, compile, plain");
  app.add_option("--python", python, "Python with torch (default: the one the build took LibTorch from)");
  app.add_option("--script", script, "the Python side");
  CLI11_PARSE(app, argc, argv);

  try {
    if (python.empty()) throw std::runtime_error("no Python with torch: pass --python");
    // The engine keeps freed memory in the process (train::keep_freed_memory);
    // the Python side gets the same glibc settings through glibc's environment
    // variables, so that neither side pays page faults the other does not.
    const std::string allocator = train::kept_memory_environment();
    const Python py{python, script, same_allocator ? allocator + " " : ""};
    const auto modes = split_list(mode_list);
    s.threads = train::configure_threads(s.threads);  // the same number on both sides
    const auto torch_py = py.call("--workload image --batch 1 --samples 1 --threads 1 --describe --device " + s.device);
    fmt::print("# Training throughput, C++ engine vs Python PyTorch\n\n");
    fmt::print("LibTorch (C++) {}, torch (Python) {}, device {} ({}), {} thread(s) each, SGD with momentum, random "
               "data in memory, median of {} alternating trials of about {} s. Python forms: {}. Python's "
               "allocator: {}.\n",
               TORCH_VERSION, torch_py.at("torch").get<std::string>(), s.device,
               torch_py.value("device_name", std::string("?")), s.threads, repeats, seconds, fmt::join(modes, ", "),
               same_allocator ? "the engine's (" + allocator + ")" : "glibc's default");

    for (const auto& name : split_list(workload_list)) {
      const Workload& w = workload_named(name);
      // Same model on both sides, or the comparison means nothing.
      models::InputSpec spec{w.shape, false, w.classes};
      const auto cpp_params = models::parameter_count(*models::make_model(w.model, spec));
      const auto py_params =
          py.call(fmt::format("--workload {} --batch 1 --samples 1 --threads 1 --describe", w.name))
              .at("parameters")
              .get<std::int64_t>();
      if (cpp_params != py_params)
        throw std::runtime_error(fmt::format("{}: the C++ model has {} parameters, the Python one {}", w.name,
                                             cpp_params, py_params));
      fmt::print("\n## {} ({}, input [{}], {} parameters)\n\n", w.name, w.model, fmt::join(w.shape, ", "),
                 cpp_params);
      // Header: the engine, then per Python form its rate and the engine's ratio
      // to it (second epoch), and the ratio end to end (compile included).
      fmt::print("| batch | samples per trial | C++ samples/s |");
      for (const auto& m : modes) fmt::print(" {0} samples/s | C++ / {0} | C++ / {0}, end to end |", m);
      fmt::print("\n|---:|---:|---:|");
      for (std::size_t i = 0; i < modes.size(); ++i) fmt::print("---:|---:|---:|");
      fmt::print("\n");
      for (const auto& b : split_list(batch_list)) {
        const std::int64_t batch = std::stoll(b);
        if (batch < 1) throw std::runtime_error("batch sizes must be >= 1");
        // Calibrate: enough whole batches for about `seconds` of C++ training.
        const std::int64_t probe_n = std::max<std::int64_t>(batch * 4, 256);
        const double rate = cpp_trial(w, batch, probe_n, s).epoch;
        const std::int64_t n = std::max<std::int64_t>(
            batch * 4, static_cast<std::int64_t>(rate * seconds / static_cast<double>(batch)) * batch);
        std::vector<double> cpp, cpp_e2e;
        std::vector<std::vector<double>> py_epoch(modes.size()), py_e2e(modes.size());
        for (int r = 0; r < repeats; ++r) {
          const auto c = cpp_trial(w, batch, n, s);
          cpp.push_back(c.epoch);
          cpp_e2e.push_back(c.end_to_end);
          for (std::size_t m = 0; m < modes.size(); ++m) {
            const auto p = python_trial(py, modes[m], w, batch, n, s);
            py_epoch[m].push_back(p.epoch);
            py_e2e[m].push_back(p.end_to_end);
          }
        }
        const double c = median(cpp), ce = median(cpp_e2e);
        fmt::print("| {} | {} | {:.0f} |", batch, n, c);
        for (std::size_t m = 0; m < modes.size(); ++m) {
          const double p = median(py_epoch[m]), pe = median(py_e2e[m]);
          fmt::print(" {:.0f} | {:.2f} | {:.2f} |", p, c / p, ce / pe);
        }
        fmt::print("\n");
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_train: {}\n", e.what());
    return 1;
  }
  return 0;
}
