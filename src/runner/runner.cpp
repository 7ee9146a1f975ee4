// The study runner: plans, resumes and runs the trials of a study, each a
// measured run (session::RunSession) of the built-in trainer or of the user's
// own program (external::CommandWorkload).
#include "powertrain/runner/runner.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "powertrain/data/load.h"
#include "powertrain/data/multitask.h"
#include "powertrain/energy/workload.h"
#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/external/workload.h"
#include "powertrain/run/workload.h"
#include "powertrain/models/model.h"
#include "powertrain/run/environment.h"
#include "powertrain/session/session.h"
#include "powertrain/study/analysis.h"
#include "powertrain/train/dataset_options.h"
#include "powertrain/train/device.h"
#include "powertrain/train/trainer.h"

namespace powertrain::runner {

using study::PlannedTrial;
using study::StudySpec;
namespace {

using Clock = std::chrono::steady_clock;

bool stop_requested(const RunOptions& o) { return o.stop && o.stop->load(); }

// --- a search segment's saved state and the record of who saved it -------------

// What a saved state holds, to tell it from another: its bytes and an FNV-1a
// hash of them. A state is a file, or a folder (a framework's checkpoint):
// then every regular file in it, in name order, with its path inside it.
struct StateDigest {
  std::uintmax_t bytes = 0;
  std::string fnv1a64;
};

StateDigest state_digest(const std::filesystem::path& state) {
  namespace fs = std::filesystem;
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&](const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  };
  StateDigest d;
  const auto add_file = [&](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot read {}", p.string()));
    std::vector<char> buf(1 << 16);
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      mix(buf.data(), static_cast<std::size_t>(in.gcount()));
      d.bytes += static_cast<std::uintmax_t>(in.gcount());
    }
    if (in.bad()) throw IoError(fmt::format("cannot read {}", p.string()));
  };
  std::error_code ec;
  if (fs::is_directory(state, ec)) {
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(state))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      const auto rel = f.lexically_relative(state).generic_string();
      mix(rel.c_str(), rel.size() + 1);
      add_file(f);
    }
  } else {
    add_file(state);
  }
  d.fnv1a64 = fmt::format("{:016x}", h);
  return d;
}

std::filesystem::path state_record_path(const std::filesystem::path& state) {
  auto p = state;
  p += ".segment.json";
  return p;
}

// After a segment that paused with its state saved: which segment saved it,
// and what it held, beside it.
void record_state_owner(const std::filesystem::path& state, const std::string& key) {
  std::error_code ec;
  if (!std::filesystem::exists(state, ec)) return;  // nothing saved: the next segment says so
  const auto digest = state_digest(state);
  const nlohmann::json j = {{"segment", key}, {"bytes", digest.bytes}, {"fnv1a64", digest.fnv1a64}};
  const auto record = state_record_path(state);
  auto tmp = record;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump() << "\n";
    if (!out.flush()) {
      std::filesystem::remove(tmp, ec);
      throw IoError(fmt::format("cannot write {}", record.string()));
    }
  }
  std::filesystem::rename(tmp, record, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw IoError(fmt::format("cannot write {}: {}", record.string(), ec.message()));
  }
}

// A segment's workload that, once the segment paused (max_epochs) with its
// state saved, records which segment saved it, before the session records
// the segment as ended: a crash between the two leaves the segment to run
// again, never a paused segment whose state has no record.
class RecordsItsState final : public run::Workload {
 public:
  RecordsItsState(std::unique_ptr<run::Workload> inner, std::filesystem::path state, std::string key)
      : inner_(std::move(inner)), state_(std::move(state)), key_(std::move(key)) {}
  int threads() const override { return inner_->threads(); }
  std::string framework() const override { return inner_->framework(); }
  bool synthetic_data() const override { return inner_->synthetic_data(); }
  run::LossLimits loss_limits() const override { return inner_->loss_limits(); }
  void run(run::RunControl& control) override {
    inner_->run(control);
    if (control.status() != run::RunStatus::max_epochs) return;
    try {
      record_state_owner(state_, key_);
    } catch (const IoError& e) {
      control.fail(e.what());
    }
  }

 private:
  std::unique_ptr<run::Workload> inner_;
  std::filesystem::path state_;
  std::string key_;
};

// Before a segment loads the state its setup's earlier segment saved: the
// state must be that segment's, as it saved it. Throws ConfigError otherwise.
void check_state_owner(const std::filesystem::path& state, const std::string& key, const std::string& label) {
  const auto record = state_record_path(state);
  nlohmann::json j;
  {
    std::ifstream in(record);
    if (!in)
      throw ConfigError(fmt::format("the state {} has no record of the segment that saved it ({} is missing): "
                                    "not loaded",
                                    state.string(), record.filename().string()));
    j = nlohmann::json::parse(in, nullptr, false);
  }
  if (!j.is_object() || !j.contains("segment") || !j["segment"].is_string() || !j.contains("fnv1a64") ||
      !j["fnv1a64"].is_string() || !j.contains("bytes") || !j["bytes"].is_number_unsigned())
    throw ConfigError(fmt::format("the record of the state {} is not readable: not loaded", state.string()));
  if (j["segment"].get<std::string>() != key)
    throw ConfigError(fmt::format("the state {} was saved by another setup's segment, not by {}'s earlier one: not "
                                  "loaded",
                                  state.string(), label));
  const auto digest = state_digest(state);
  if (digest.bytes != j["bytes"].get<std::uintmax_t>() || digest.fnv1a64 != j["fnv1a64"].get<std::string>())
    throw ConfigError(fmt::format("the state {} changed after its segment saved it: not loaded", state.string()));
}

std::string normalize_name(std::string s) {
  for (auto& c : s) {
    if (c == '_' || c == '-') c = ' ';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

/// The data layer's options for a trial: one split for every seed (data_seed),
/// every label (tasks and classes are applied by the runner on the loaded data).
run::RunConfig data_config(const run::RunConfig& trial, std::uint64_t data_seed) {
  auto c = trial;
  c.seed = data_seed;
  c.tasks.clear();
  return c;
}

std::string data_key(const run::RunConfig& c) {
  std::string k = fmt::format("{}|{}|{}|{}", c.dataset, c.data_dir, c.subset, c.seed);
  for (const auto& [key, v] : c.data_options) k += "|" + key + "=" + v;
  return k;
}

/// Keeps only the samples of `classes` (indices or names) and numbers them 0..k-1.
data::Dataset filter_classes(const data::Dataset& ds, const std::vector<std::string>& classes) {
  if (ds.label_kind != data::LabelKind::single_label)
    throw ConfigError(fmt::format("a class filter needs single-label data; {} is multi-label (use tasks)", ds.name));
  std::vector<std::int64_t> keep;
  for (const auto& c : classes) {
    std::optional<std::int64_t> idx;
    if (!c.empty() && std::all_of(c.begin(), c.end(), [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)); })) {
      const auto v = std::stoll(c);
      if (v >= 0 && v < ds.num_outputs()) idx = v;
    } else {
      for (std::size_t i = 0; i < ds.labels.size(); ++i)
        if (normalize_name(ds.labels[i]) == normalize_name(c)) idx = static_cast<std::int64_t>(i);
    }
    if (!idx) {
      std::string valid;
      for (std::size_t i = 0; i < ds.labels.size(); ++i) valid += fmt::format("{}{} ({})", i ? ", " : "", i, ds.labels[i]);
      throw ConfigError(fmt::format("unknown class '{}' of {} (valid: {})", c, ds.name, valid));
    }
    if (std::find(keep.begin(), keep.end(), *idx) != keep.end())
      throw ConfigError(fmt::format("class '{}' is listed twice", c));
    keep.push_back(*idx);
  }
  // Old label -> new label (-1: dropped).
  std::vector<std::int64_t> remap(static_cast<std::size_t>(std::max<std::int64_t>(ds.num_outputs(), 1)), -1);
  for (std::size_t i = 0; i < keep.size(); ++i) remap[static_cast<std::size_t>(keep[i])] = static_cast<std::int64_t>(i);
  const auto table = torch::tensor(remap, torch::kInt64);
  auto filter = [&](const data::Split& s) {
    data::Split out;
    if (!s.x.defined() || s.size() == 0) return s;
    const auto y = s.y.to(torch::kCPU);
    const auto mapped = table.index_select(0, y.clamp(0, static_cast<std::int64_t>(remap.size()) - 1));
    const auto idx = torch::nonzero(mapped.ge(0)).squeeze(1);
    out.x = s.x.index_select(0, idx.to(s.x.device()));
    out.y = mapped.index_select(0, idx).to(s.y.device());
    return out;
  };
  data::Dataset out = ds;
  out.train = filter(ds.train);
  out.val = filter(ds.val);
  out.test = filter(ds.test);
  out.labels.clear();
  for (auto k : keep) out.labels.push_back(ds.labels[static_cast<std::size_t>(k)]);
  std::string names;
  for (const auto& l : out.labels) names += (names.empty() ? "" : ", ") + l;
  out.provenance += fmt::format("; classes {} only", names);
  if (out.train.size() == 0) throw ConfigError(fmt::format("no training samples of classes {} in {}", names, ds.name));
  return out;
}

/// Multi-label data with only the named tasks (in that order); for single-label
/// data, the derived binary tasks of data/multitask.h.
data::Dataset select_tasks(const data::Dataset& ds, const std::vector<std::string>& tasks) {
  if (ds.label_kind == data::LabelKind::single_label) return data::to_multitask(ds, tasks);
  std::vector<std::int64_t> idx;
  for (const auto& t : tasks) {
    auto it = std::find_if(ds.labels.begin(), ds.labels.end(),
                           [&](const std::string& l) { return normalize_name(l) == normalize_name(t); });
    if (it == ds.labels.end()) {
      std::string valid;
      for (const auto& l : ds.labels) valid += (valid.empty() ? "" : ", ") + l;
      throw ConfigError(fmt::format("unknown task '{}' of {} (valid: {})", t, ds.name, valid));
    }
    idx.push_back(it - ds.labels.begin());
  }
  const auto index = torch::tensor(idx, torch::kInt64);
  auto pick = [&](const data::Split& s) {
    data::Split out = s;
    if (s.y.defined() && s.size() > 0) out.y = s.y.index_select(1, index.to(s.y.device())).contiguous();
    return out;
  };
  data::Dataset out = ds;
  out.train = pick(ds.train);
  out.val = pick(ds.val);
  out.test = pick(ds.test);
  out.labels.clear();
  for (auto i : idx) out.labels.push_back(ds.labels[static_cast<std::size_t>(i)]);
  return out;
}

}  // namespace

/// Loaded datasets, each distinct data setting once, and their label views.
class DataCache {
 public:
  explicit DataCache(std::uint64_t data_seed) : data_seed_(data_seed) {}

  const data::Dataset& base(const run::RunConfig& trial) {
    const auto dc = data_config(trial, data_seed_);
    const auto key = data_key(dc);
    auto it = base_.find(key);
    if (it == base_.end()) it = base_.emplace(key, data::load_dataset(train::dataset_options(dc))).first;
    return it->second;
  }

  const data::Dataset& view(const PlannedTrial& t) {
    const auto& c = t.spec.config;
    const auto& b = base(c);
    if (t.classes.empty() && c.tasks.empty()) return b;
    std::string key = data_key(data_config(c, data_seed_)) + "|classes=";
    for (const auto& k : t.classes) key += k + ",";
    key += "|tasks=" + c.tasks;
    auto it = views_.find(key);
    if (it == views_.end()) {
      data::Dataset d = t.classes.empty() ? b : filter_classes(b, t.classes);
      if (!c.tasks.empty()) d = select_tasks(d, split_list(c.tasks));
      it = views_.emplace(key, std::move(d)).first;
    }
    return it->second;
  }

 private:
  std::uint64_t data_seed_;
  std::map<std::string, data::Dataset> base_;
  std::map<std::string, data::Dataset> views_;
};

namespace {

/// Checks what would fail every trial the same way, before anything is written.
void preflight(const PlannedTrial& t, const data::Dataset& ds) {
  const auto& c = t.spec.config;
  (void)train::parse_device(c.device);
  const auto& names = models::model_names();
  if (std::find(names.begin(), names.end(), c.model) == names.end()) {
    std::string valid;
    for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
    throw ConfigError(fmt::format("unknown model '{}' (valid: {})", c.model, valid));
  }
  (void)train::parse_device(c.device);
  (void)models::make_model(c.model, train::input_spec(ds));
}

void sleep_interruptible(double seconds, const RunOptions& o) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end && !stop_requested(o)) {
    const auto left = std::chrono::duration<double>(end - Clock::now()).count();
    std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.1, std::max(0.0, left))));
  }
}

/// Loads the trial's device for `seconds`: matrix products on a GPU, energy::burn on the CPU.
void warm_up(const StudySpec& spec, const run::RunConfig& c, const RunOptions& o) {
  const double seconds = spec.execution.warmup_s;
  if (!(seconds > 0.0) || stop_requested(o)) return;
  const auto device = train::parse_device(c.device);
  const bool on_device = spec.execution.warmup_load == "device" ||
                         (spec.execution.warmup_load == "auto" && device.is_cuda());
  if (on_device && !device.is_cpu()) {
    train::load_device(device, seconds, [&o] { return stop_requested(o); });
    return;
  }
  const int threads = c.threads > 0 ? c.threads : run::available_cpus();
  // Slices of a second so that a stop request is honoured quickly.
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (!stop_requested(o)) {
    const double left = std::chrono::duration<double>(end - Clock::now()).count();
    if (left <= 0.0) break;
    energy::burn(std::min(1.0, left), threads);
  }
}

}  // namespace

namespace {

// 1. The study as stored must be the same experiment (same kind, same plan).
void check_same_experiment(const StudySpec& spec, const store::Study& existing, const std::filesystem::path& db) {
  if (existing.kind != spec.kind)
    throw ConfigError(fmt::format("study '{}' in {} is a {} study, not {}; choose another name", spec.name,
                                  db.string(), existing.kind, spec.kind));
  std::string stored_fp;
  try {
    stored_fp = study::plan_fingerprint(
        study::parse_spec(existing.spec, fmt::format("<stored spec of study '{}'>", spec.name), existing.kind));
  } catch (const ConfigError&) {
    stored_fp.clear();
  }
  if (stored_fp != study::plan_fingerprint(spec))
    throw ConfigError(fmt::format(
        "study '{}' in {} was created from a specification that trains other trials; "
        "give this one another name (name = \"...\" in the spec, or --name) or use another database",
        spec.name, db.string()));
}

// 2. Data and models of the trials that will run (`todo`): bad settings fail
// here, before any write. A command's data is its own business; its settings
// are checked by building the workload.
void check_trials(const std::vector<PlannedTrial>& plan, const std::vector<bool>& todo, bool external,
                  const external::CommandOptions& command_options, DataCache& cache) {
  std::map<std::string, bool> checked;
  for (std::size_t i = 0; i < plan.size(); ++i) {
    if (!todo[i]) continue;
    if (external) {
      (void)external::CommandWorkload(plan[i].spec.config, command_options);
      continue;
    }
    const auto& ds = cache.view(plan[i]);
    const auto k = plan[i].spec.config.model + "|" + plan[i].spec.config.device + "|" + data_key(plan[i].spec.config) +
                   "|" + plan[i].spec.config.tasks + "|" + std::to_string(plan[i].classes.size());
    if (!checked[k]) preflight(plan[i], ds);
    checked[k] = true;
  }
}

// What one trial of a study run shares with the others.
struct StudyContext {
  const StudySpec& spec;
  store::Store& store;
  const RunOptions& o;
  const std::vector<PlannedTrial>& plan;
  const std::vector<std::int64_t>& trial_ids;
  std::int64_t study_id = 0;
  std::filesystem::path artifacts;
  std::filesystem::path spec_dir;  ///< a command's relative working directory is taken from here
  bool external = false;
  external::CommandOptions command_options;
  DataCache& cache;
};

// A trial ready to run: its settings and workload, and what the session records with it.
struct PreparedTrial {
  run::RunConfig config;
  std::unique_ptr<run::Workload> workload;
  std::optional<double> quiet_wait_s;
  std::vector<run::EpochRecord> prior_epochs;
  std::string note;  ///< stored with the run's message
};

// A search's later segment: the earlier segments' epochs and the state the last one saved.
void continue_segment(const StudyContext& c, const PlannedTrial& t, const std::string& label, PreparedTrial& p) {
  auto& config = p.config;
  auto& prior_epochs = p.prior_epochs;
  const auto& o = c.o;
  const auto& artifacts = c.artifacts;
  for (const auto& key : t.continues) {
    const auto earlier = c.store.find_trial(c.study_id, key);
    const auto handed = o.earlier_epochs.find(key);
    std::vector<run::EpochRecord> epochs;
    if (earlier && earlier->run_id && store::is_done(earlier->status)) epochs = c.store.epochs_of(*earlier->run_id);
    else if (!earlier && handed != o.earlier_epochs.end()) epochs = handed->second;
    else throw ConfigError(fmt::format("its earlier segment ({}) has not ended", key));
    for (auto& e : epochs)
      if (e.epoch == static_cast<int>(prior_epochs.size()) + 1) prior_epochs.push_back(std::move(e));
  }
  const auto state = study::segment_state_path(artifacts, t.continues.back());
  if (std::filesystem::exists(state)) {
    check_state_owner(state, t.continues.back(), t.label);
    config.resume_from = state.string();
  } else if (c.external) {
    // The user's program wrote no state (docs/external.md, Continuing a
    // paused run): the setup is trained again from epoch 1, which costs
    // its earlier epochs once more but ranks it on the epochs it needs.
    prior_epochs.clear();
    p.note = fmt::format("trained again from epoch 1: the program saved no state at the end of its earlier "
                       "segment ({})",
                       state.string());
    if (o.log) fmt::print(o.log, "{}: {}\n", label, p.note);
  } else {
    throw IoError(fmt::format("the state its earlier segment saved ({}) is missing", state.string()));
  }
}

// A pretraining study's downstream trial: the encoder its pretraining wrote.
std::string pretrained_encoder(const StudyContext& c, const PlannedTrial& t) {
  const auto& src = c.plan[static_cast<std::size_t>(t.encoder_from)];
  const auto pre = c.store.trial(c.trial_ids[static_cast<std::size_t>(t.encoder_from)]);
  const bool pre_usable = pre.status == store::TrialStatus::converged || pre.status == store::TrialStatus::max_epochs;
  if (!pre_usable && !(c.o.encoder_from_file && pre.status == store::TrialStatus::pending))
    throw ConfigError(fmt::format("its pretraining ({}) has no usable encoder: {}", src.label, store::to_string(pre.status)));
  const auto encoder = run::encoder_checkpoint_path(c.artifacts / fmt::format("pretrain-seed{}.pt", src.spec.config.seed));
  if (!std::filesystem::exists(encoder))
    throw IoError(fmt::format("the pretrained encoder {} is missing", encoder.string()));
  return encoder.string();
}

// A trial's settings where this study run keeps its files.
run::RunConfig trial_config(const StudyContext& c, const PlannedTrial& t) {
  auto config = t.spec.config;
  if (config.data_dir.empty()) config.data_dir = c.spec.base.data_dir;
  if (t.spec.phase == study::kPhasePretrain)
    config.checkpoint = (c.artifacts / fmt::format("pretrain-seed{}.pt", config.seed)).string();
  if (c.external) {
    auto& dir = config.command.workdir;
    if (!c.spec_dir.empty()) dir = (c.spec_dir / dir).lexically_normal().string();
    if (t.spec.phase == study::kPhasePretrain) std::filesystem::create_directories(c.artifacts);
  }
  return config;
}

// Everything before the run starts, which may fail the trial without a run
// (a ConfigError or IoError; a StoreError is the database's and ends the study).
PreparedTrial prepare_trial(const StudyContext& c, const PlannedTrial& t, const std::string& label,
                            run::RunConfig config_in) {
  const auto& spec = c.spec;
  const auto& o = c.o;
  const auto& artifacts = c.artifacts;
  PreparedTrial p;
  auto& config = p.config;
  config = std::move(config_in);
  if (t.saves_state || !t.continues.empty()) std::filesystem::create_directories(artifacts / "search");
  if (t.saves_state) config.save_state = study::segment_state_path(artifacts, t.spec.key).string();
  if (!t.continues.empty()) continue_segment(c, t, label, p);
  if (t.encoder_from >= 0) config.init_encoder = pretrained_encoder(c, t);
  if (spec.execution.quiet_wait_s > 0) {
    energy::QuietRule rule;
    rule.max_wait_s = spec.execution.quiet_wait_s;
    rule.max_busy_cpus = spec.execution.quiet_cpus;
    p.quiet_wait_s = session::wait_for_quiet_machine(rule, o.log, o.stop);
  }
  warm_up(spec, config, o);
  if (c.external) {
    p.workload = std::make_unique<external::CommandWorkload>(config, c.command_options);
  } else {
    p.workload = std::make_unique<train::Trainer>(config, c.cache.view(t));
  }
  return p;
}

// Runs a prepared trial in a session that records it; nullopt when another
// process claimed it first, or finished it.
std::optional<session::RunOutcome> run_prepared(const StudyContext& c, const PlannedTrial& t, std::int64_t trial_id,
                                                const std::string& label, PreparedTrial p) {
  const auto& spec = c.spec;
  const auto& o = c.o;
  auto& config = p.config;
  auto& workload = p.workload;
  // A segment that saves its state records it as its own before the
  // session records the segment as ended.
  if (t.saves_state) {
    // An earlier attempt's state and record go: what this attempt saves (or
    // does not) is what the next segment finds.
    std::error_code ec;
    std::filesystem::remove(state_record_path(config.save_state), ec);
    std::filesystem::remove_all(config.save_state, ec);
    workload = std::make_unique<RecordsItsState>(std::move(workload), config.save_state, t.spec.key);
  }

  session::SessionOptions so;
  so.interval = std::chrono::milliseconds(spec.execution.interval_ms);
  so.disabled_sources = o.disabled_sources;
  so.stop = o.stop;
  so.log = o.log;
  so.terminal = o.terminal;
  so.label = label;
  so.quiet_wait_s = p.quiet_wait_s;
  so.placement = o.placement;
  so.prior_epochs = std::move(p.prior_epochs);
  so.note = p.note;
  so.stop_rule = o.stop_rule;
  so.on_run_start = [&](std::int64_t run_id) {
    if (o.on_trial_start) o.on_trial_start(t, run_id);
  };
  session::RunSession session(c.store, so);
  const auto outcome = session.run_trial(trial_id, config, *workload);
  workload.reset();
  if (!outcome.ran) return std::nullopt;
  return outcome;
}

}  // namespace

StudyRun run_study(const StudySpec& spec, store::Store& store, const RunOptions& o) {
  StudyRun r;
  const auto plan = o.plan ? *o.plan : study::plan_trials(spec);
  r.planned = static_cast<int>(plan.size());
  const std::filesystem::path db = o.db.empty() ? store.path() : o.db;
  const bool external = !spec.base.command.empty();

  // 1. The study: new, or the same experiment as stored.
  const auto existing = store.find_study(spec.name);
  if (existing) check_same_experiment(spec, *existing, db);

  // 2. Data and models for the trials that will run, before any write.
  auto cache_holder = o.data_cache ? o.data_cache : std::make_shared<DataCache>(spec.data_seed);
  std::vector<bool> todo(plan.size(), true);
  const auto selected = [&](std::size_t i) { return o.only_keys.empty() || o.only_keys.count(plan[i].spec.key) > 0; };
  for (std::size_t i = 0; i < plan.size(); ++i) todo[i] = selected(i);
  if (existing)
    for (std::size_t i = 0; i < plan.size(); ++i)
      if (auto t = store.find_trial(existing->id, plan[i].spec.key)) todo[i] = todo[i] && !store::is_done(t->status);
  external::CommandOptions command_options;
  command_options.timeout_s = spec.execution.timeout_s;
  command_options.idle_timeout_s = spec.execution.idle_timeout_s;
  command_options.grace_s = spec.execution.grace_s;
  external::validate(command_options);
  check_trials(plan, todo, external, command_options, *cache_holder);

  // 3. Store: the study, its trials, and trials a dead process left running.
  if (existing) {
    r.study_id = existing->id;
  } else {
    const auto env = run::collect_environment(
        spec.base.device, spec.base.threads > 0 ? spec.base.threads : run::available_cpus(), nullptr,
        external ? "external: " + external::display(spec.base.command) : train::torch_version());
    r.study_id = store.create_study(spec.name, spec.kind, spec.text, env);
    r.created = true;
  }
  std::vector<std::int64_t> trial_ids;
  for (const auto& t : plan) trial_ids.push_back(store.upsert_trial(r.study_id, t.spec));
  r.reset = store.reset_interrupted(r.study_id);
  if (o.plan_only) return r;

  StudyContext c{spec, store, o, plan, trial_ids, r.study_id, study::artifacts_dir(spec, db), {}, external,
                 command_options, *cache_holder};
  // A command's relative working directory is taken from the spec's folder.
  if (external && !spec.source.empty() && spec.source.front() != '<')
    c.spec_dir = std::filesystem::absolute(std::filesystem::path(spec.source)).parent_path();

  // 4. The trials, in plan order. Trials another live process holds are
  // passed over, and looked at again once the others are through: their
  // holder may have died meanwhile.
  int ran = 0;
  std::vector<std::size_t> order(plan.size());
  for (std::size_t i = 0; i < plan.size(); ++i) order[i] = i;
  std::vector<bool> passed_over(plan.size(), false);
  for (std::size_t pos = 0; pos < order.size(); ++pos) {
    const std::size_t i = order[pos];
    if (!selected(i)) continue;
    const auto& t = plan[i];
    const auto trial_id = trial_ids[i];
    const auto status = store.trial(trial_id).status;
    if (store::is_done(status)) {
      if (!passed_over[i]) ++r.skipped;
      continue;
    }
    if (status == store::TrialStatus::running) {
      if (!passed_over[i]) {
        passed_over[i] = true;
        order.push_back(i);  // once more at the end
        continue;
      }
      r.reset += store.reset_interrupted(r.study_id);
      if (store.trial(trial_id).status == store::TrialStatus::running) {
        ++r.busy;  // still held by a live process
        continue;
      }
    }
    if (stop_requested(o) || (o.max_trials >= 0 && ran >= o.max_trials)) {
      r.stopped = true;
      break;
    }
    if (ran > 0 && spec.execution.cooldown_s > 0.0) {
      sleep_interruptible(spec.execution.cooldown_s, o);
      if (stop_requested(o)) {
        r.stopped = true;
        break;
      }
    }
    ++ran;
    const std::string label = fmt::format("[{}/{}] {}", i + 1, plan.size(), t.label);

    auto config = trial_config(c, t);
    PreparedTrial prepared;
    try {
      prepared = prepare_trial(c, t, label, std::move(config));
    } catch (const StoreError&) {
      throw;
    } catch (const std::exception& e) {
      store.mark_trial_failed(trial_id, e.what());
      ++r.failed;
      if (o.log) fmt::print(o.log, "{}: failed: {}\n", label, e.what());
      continue;
    }
    const auto outcome = run_prepared(c, t, trial_id, label, std::move(prepared));
    if (!outcome) {  // another process claimed it first, or finished it
      --ran;
      if (!store::is_done(store.trial(trial_id).status)) ++r.busy;
      continue;
    }

    switch (outcome->summary.status) {
      case run::RunStatus::converged:
      case run::RunStatus::max_epochs:
      case run::RunStatus::stopped: ++r.completed; break;  // stopped on purpose (a search's rule): a result
      case run::RunStatus::diverged: ++r.diverged; break;
      case run::RunStatus::failed: ++r.failed; break;
      case run::RunStatus::interrupted:
      case run::RunStatus::running: r.stopped = true; break;
    }
    if (r.stopped) break;
  }
  return r;
}

std::function<std::optional<std::string>(const run::EpochRecord&)> segment_stop_rule(
    const StudySpec& spec, std::vector<predict::CurvePoint> prior, double best_j) {
  const int prior_last = prior.empty() ? 0 : prior.back().epoch;
  auto rule = std::make_shared<search::EpochRule>(spec.search, std::move(prior), best_j);
  // A segment trained again from epoch 1 (its program saved no state)
  // repeats epochs the rule has judged already: it is asked from the new ones on.
  return [rule, prior_last](const run::EpochRecord& e) -> std::optional<std::string> {
    if (e.epoch <= prior_last) return std::nullopt;
    return rule->after({e.epoch, e.val_metric, e.energy_j});
  };
}

SearchRun run_search(const StudySpec& spec, store::Store& store, const RunOptions& o) {
  if (spec.kind != "search")
    throw ConfigError(fmt::format("study '{}' is a {} study, not a search", spec.name, spec.kind));
  SearchRun out;
  out.setups = study::search_setups(spec);
  auto options = o;
  if (!options.data_cache) options.data_cache = std::make_shared<DataCache>(spec.data_seed);
  // The study: created (or checked against the stored one) by a run_study
  // that plans nothing; then one segment per call.
  {
    auto first = options;
    first.plan = std::vector<PlannedTrial>{};
    first.plan_only = true;
    const auto r = run_study(spec, store, first);
    out.study_id = r.study_id;
    out.created = r.created;
  }
  // A segment that fails runs again when the search is run again; in this
  // call it counts as failed, so that the others go on.
  std::set<std::string> failed_now;
  const auto R = search::rungs(spec.search);
  const auto segment_key = [&](const search::Observed& ob) {
    const int k = ob.rung;
    return study::segment_trial(spec, {ob.setup, k, k == 0 ? 1 : R[static_cast<std::size_t>(k - 1)] + 1,
                                       R[static_cast<std::size_t>(k)]})
        .spec.key;
  };
  for (;;) {
    auto observed = study::observe_search(store, out.study_id, spec);
    for (auto& ob : observed)
      if (ob.rung >= 0 && ob.state == search::SegmentState::pending && failed_now.count(segment_key(ob)))
        ob.state = search::SegmentState::failed;
    out.spent_j = store.energy_of_study(out.study_id);
    out.decision = search::decide(spec.search, out.setups, observed, out.spent_j);
    if (out.decision.finished) break;
    if (out.decision.next.empty()) {  // the rest runs elsewhere
      out.waiting = true;
      break;
    }
    if (stop_requested(o) || (o.max_trials >= 0 && out.segments >= o.max_trials)) {
      out.stopped = true;
      break;
    }
    // The first segment nobody holds: another process may run one of this rung.
    bool ran = false, ended_elsewhere = false;
    for (const auto& seg : out.decision.next) {
      auto call = options;
      call.plan = std::vector<PlannedTrial>{study::segment_trial(spec, seg)};
      call.max_trials = 1;
      // Zeus's rule after every epoch, against the best measured when the segment starts.
      std::vector<predict::CurvePoint> prior;
      for (const auto& ob : observed)
        if (ob.setup == seg.setup) prior = ob.epochs;
      call.stop_rule = segment_stop_rule(spec, std::move(prior), search::best_measured_j(spec.search, observed));
      const auto r = run_study(spec, store, call);
      if (r.busy > 0) continue;  // another process runs it
      if (r.skipped > 0) {       // another process finished it meanwhile: decide again
        ended_elsewhere = true;
        break;
      }
      ran = true;
      ++out.segments;
      out.failed += r.failed;
      if (r.failed > 0) failed_now.insert(call.plan->front().spec.key);
      if (r.stopped) out.stopped = true;
      break;
    }
    if (out.stopped) break;
    if (!ran && !ended_elsewhere) {
      out.waiting = true;
      break;
    }
  }
  out.spent_j = store.energy_of_study(out.study_id);
  // What the records say now, as the next call (and the tables) will see
  // them: a segment that failed here is to be run again, so the search is
  // not finished.
  if (!failed_now.empty())
    out.decision =
        search::decide(spec.search, out.setups, study::observe_search(store, out.study_id, spec), out.spent_j);
  return out;
}

}  // namespace powertrain::runner
