// Every consumer of the table of run settings picks every row up: the stored
// JSON reads back each setting, trial keys change with each setting that
// defines the experiment (and only those), a command gets each placeholder
// and POWERTRAIN_* variable, a study spec reads each key and refuses values
// out of range at their line. The flags of `powertrain train` are checked
// end to end in tests/cli/train_cli_test.cpp.
//
// Trial keys must stay byte for byte what they were, or the trials of an
// existing database would run again: the functions at the top are the keys as
// they were built before the table (frozen copies), compared with the table's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/run/settings.h"
#include "powertrain/store/json.h"
#include "powertrain/study/plan.h"
#include "powertrain/study/spec.h"

namespace powertrain::run {
namespace {

using nlohmann::json;

// --- the keys as they were built before the table (do not change) -----------

json config_json_before(const RunConfig& c) {
  json j = {
      {"dataset", c.dataset},         {"data_dir", c.data_dir},         {"model", c.model},
      {"optimizer", c.optimizer},     {"learning_rate", c.learning_rate}, {"momentum", c.momentum},
      {"weight_decay", c.weight_decay}, {"batch_size", c.batch_size},   {"max_epochs", c.max_epochs},
      {"patience", c.patience},       {"min_delta", c.min_delta},       {"target_metric", nullptr},
      {"seed", c.seed},               {"threads", c.threads},           {"device", c.device},
      {"subset", c.subset},           {"checkpoint", c.checkpoint},     {"init_encoder", c.init_encoder},
      {"freeze_encoder", c.freeze_encoder}, {"tasks", c.tasks},        {"data_options", c.data_options},
  };
  if (c.target_metric) j["target_metric"] = *c.target_metric;
  if (c.stop_at_target) j["stop_at_target"] = true;
  if (!c.resume_from.empty()) j["resume_from"] = c.resume_from;
  if (!c.save_state.empty()) j["save_state"] = c.save_state;
  if (!c.command.empty()) {
    j["command"] = c.command.argv;
    j["workdir"] = c.command.workdir;
    j["env"] = c.command.env;
    if (c.command.distributed()) {
      j["nproc_per_node"] = c.command.nproc_per_node;
      j["nnodes"] = c.command.nnodes;
      j["launcher"] = c.command.launcher;
    }
  }
  return j;
}

std::string trial_key_before(const RunConfig& c) {
  auto sorted = c;
  std::sort(sorted.data_options.begin(), sorted.data_options.end());
  json j = config_json_before(sorted);
  for (const char* k : {"data_dir", "checkpoint", "resume_from", "save_state"}) j.erase(k);
  return j.dump();
}

std::string canonical_key_before(const RunConfig& c, std::uint64_t data_seed, const std::string& phase, int step,
                                 const std::string& task, const std::vector<std::string>& classes) {
  json data = json::object();
  for (const auto& [k, v] : c.data_options) data[k] = v;
  json j = {
      {"batch_size", c.batch_size}, {"classes", classes},     {"data", data},
      {"data_seed", data_seed},     {"dataset", c.dataset},   {"device", c.device},
      {"freeze_encoder", c.freeze_encoder}, {"init_encoder", !c.init_encoder.empty()},
      {"learning_rate", c.learning_rate}, {"max_epochs", c.max_epochs}, {"min_delta", c.min_delta},
      {"model", c.model},           {"momentum", c.momentum}, {"optimizer", c.optimizer},
      {"patience", c.patience},     {"phase", phase},         {"seed", c.seed},
      {"step", step},               {"subset", c.subset},
      {"target_metric", c.target_metric ? json(*c.target_metric) : json(nullptr)},
      {"task", task},               {"tasks", c.tasks},       {"threads", c.threads},
      {"weight_decay", c.weight_decay},
  };
  if (c.stop_at_target) j["stop_at_target"] = true;
  if (!c.command.empty()) {
    j["command"] = c.command.argv;
    j["workdir"] = c.command.workdir;
    j["env"] = c.command.env;
    if (c.command.distributed()) {
      j["nproc_per_node"] = c.command.nproc_per_node;
      j["nnodes"] = c.command.nnodes;
      j["launcher"] = c.command.launcher;
    }
  }
  return j.dump();
}

// --- configurations and values ----------------------------------------------

/// Configurations of every kind a database holds: built-in, segment, pretrain
/// reuse, command, distributed command, with a target.
std::vector<RunConfig> sample_configs() {
  std::vector<RunConfig> out;
  RunConfig c;
  out.push_back(c);
  c.learning_rate = 1e-4;
  c.batch_size = 512;
  c.seed = 3;
  c.data_options = {{"max_samples", "3000"}, {"image_size", "32"}};
  c.data_dir = "/data";
  c.checkpoint = "/runs/1.pt";
  out.push_back(c);
  c.target_metric = 0.85;
  c.stop_at_target = true;
  c.resume_from = "/state/a";
  c.save_state = "/state/b";
  out.push_back(c);
  RunConfig p;
  p.init_encoder = "/enc.pt";
  p.freeze_encoder = true;
  p.tasks = "smiling,male";
  p.optimizer = "adam";
  p.patience = 0;
  out.push_back(p);
  RunConfig cmd;
  cmd.dataset.clear();
  cmd.model.clear();
  cmd.command.argv = {"python3", "train.py", "--lr", "{learning_rate}"};
  cmd.command.env = {{"A", "{seed}"}};
  cmd.command.workdir = "/w";
  out.push_back(cmd);
  cmd.command.nproc_per_node = 2;
  cmd.command.nnodes = 2;
  cmd.command.launcher = "srun";
  cmd.threads = 2;
  out.push_back(cmd);
  return out;
}

/// A value of `s` in range and other than its default.
SettingValue sample(const Setting& s) {
  const auto def = get(s, RunConfig{});
  const auto& r = s.range;
  switch (s.type) {
    case SettingType::integer: {
      auto v = static_cast<std::int64_t>(r.low) + 1;
      if (SettingValue(v) == def) ++v;
      return v;
    }
    case SettingType::number:
      if (std::isfinite(r.high)) return (r.low + r.high) / 2;
      return r.low + 0.25;
    case SettingType::optional_number: return 0.75;
    case SettingType::boolean: return !std::get<bool>(def);
    case SettingType::text:
      if (!s.choices.empty()) {
        for (const auto& c : {"adam", "srun", "torchrun", "sgd"})
          if (SettingValue(std::string(c)) != def && !range_error(s, std::string(c))) return std::string(c);
      }
      return fmt::format("value-of-{}", s.name);
    case SettingType::text_list: return std::string("a,b");
  }
  return {};
}

/// A config where every row is present (a distributed command).
RunConfig everything_present() {
  RunConfig c;
  c.command.argv = {"prog"};
  c.command.nproc_per_node = 2;
  return c;
}

// --- the consumers -----------------------------------------------------------

TEST(SettingsConsumers, TrialKeysAreWhatTheyWere) {
  for (const auto& c : sample_configs()) {
    EXPECT_EQ(store::trial_key(c), trial_key_before(c));
    EXPECT_EQ(store::config_json(c), config_json_before(c));
    EXPECT_EQ(study::canonical_key(c, 0, "", 0, "", {}), canonical_key_before(c, 0, "", 0, "", {}));
    EXPECT_EQ(study::canonical_key(c, 7, "finetune", 2, "step 2", {"3", "4"}),
              canonical_key_before(c, 7, "finetune", 2, "step 2", {"3", "4"}));
  }
}

TEST(SettingsConsumers, StoredJsonReadsBackEveryRow) {
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    auto c = everything_present();
    const auto v = sample(s);
    set(s, c, v);
    const auto j = store::config_json(c);
    EXPECT_TRUE(j.contains(std::string(s.name)));
    EXPECT_EQ(get(s, store::config_from_json(j)), v);
  }
}

TEST(SettingsConsumers, TrialKeysChangeWithEverySettingOfTheExperiment) {
  const auto base = everything_present();
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    auto c = base;
    set(s, c, sample(s));
    EXPECT_EQ(store::trial_key(c) != store::trial_key(base), s.trial_key);
    EXPECT_EQ(study::canonical_key(c, 0, "", 0, "", {}) != study::canonical_key(base, 0, "", 0, "", {}), s.trial_key);
  }
}

TEST(SettingsConsumers, ACommandGetsEveryPlaceholderAndVariable) {
  for (const auto& s : settings()) {
    SCOPED_TRACE(std::string(s.name));
    auto c = everything_present();
    set(s, c, sample(s));
    c.resume_from = c.resume_from.empty() ? "/state" : c.resume_from;  // a segment: its settings are there too
    const auto values = external::placeholder_values(c);
    const auto names = external::placeholder_names();
    const bool listed = std::find(names.begin(), names.end(), s.name) != names.end();
    EXPECT_EQ(listed, s.placeholder);
    EXPECT_EQ(values.count(std::string(s.name)) == 1, s.placeholder);
    if (!s.placeholder) continue;
    EXPECT_EQ(values.at(std::string(s.name)), text(s, c));
    EXPECT_EQ(external::expand(fmt::format("--x={{{}}}", s.name), values), "--x=" + text(s, c));
    const auto env = external::program_environment(c);
    std::string var = "POWERTRAIN_";
    for (char ch : s.name) var += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    const auto it = std::find_if(env.begin(), env.end(), [&](const auto& kv) { return kv.first == var; });
    ASSERT_NE(it, env.end()) << var;
    EXPECT_EQ(it->second, s.type == SettingType::boolean ? (text(s, c) == "true" ? "1" : "0") : text(s, c));
  }
}

/// A spec that sets the row's key to `value` (TOML text), with what the key needs beside it.
std::string spec_with(const Setting& s, const std::string& value) {
  const auto section = s.toml_key.substr(0, s.toml_key.find('.'));
  const auto key = s.toml_key.substr(section.size() + 1);
  std::string workload, training;
  const bool command_key = s.presence == Presence::with_command || s.presence == Presence::distributed;
  if (command_key) {
    workload += "command = [\"prog\"]\n";
    if (s.name != "nproc_per_node") workload += "nproc_per_node = 2\n";
    if (s.name == "nnodes") workload += "launcher = \"srun\"\n";
  }
  (section == "workload" ? workload : training) += fmt::format("{} = {}\n", key, value);
  // A grid sweeps the swept settings: a multitask study reads them.
  std::string text = s.swept ? "kind = \"multitask\"\n[multitask]\ntasks = [\"a\", \"b\"]\n" : "kind = \"grid\"\n";
  if (!workload.empty()) text += "[workload]\n" + workload;
  if (!training.empty()) text += "[training]\n" + training;
  return text;
}

std::string toml_value(const SettingValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    if (std::isnan(*d)) return "nan";
    if (std::isinf(*d)) return "inf";
    return fmt::format("{:.17g}", *d).find_first_of(".e") == std::string::npos ? fmt::format("{:.1f}", *d)
                                                                                : fmt::format("{:.17g}", *d);
  }
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const auto* t = std::get_if<std::string>(&v)) {
    if (t->find(',') != std::string::npos) return "[\"a\", \"b\"]";
    return fmt::format("\"{}\"", *t);
  }
  return "nan";
}

TEST(SettingsConsumers, ASpecReadsEveryKey) {
  int read = 0;
  for (const auto& s : settings()) {
    if (s.toml_key.empty()) continue;
    SCOPED_TRACE(std::string(s.toml_key));
    const auto v = sample(s);
    const auto text = spec_with(s, toml_value(v));
    const auto spec = study::parse_spec(text, "spec.toml");
    EXPECT_EQ(get(s, spec.base), v) << text;
    ++read;
  }
  EXPECT_GT(read, 15);
}

TEST(SettingsConsumers, ASpecRefusesValuesOutOfRangeAtTheirLine) {
  for (const auto& s : settings()) {
    if (s.toml_key.empty()) continue;
    SettingValue bad;
    if (s.type == SettingType::integer) bad = static_cast<std::int64_t>(s.range.low) - 1;
    else if (s.type == SettingType::number || s.type == SettingType::optional_number) bad = std::nan("");
    else if (!s.choices.empty()) bad = std::string("nonsense");
    else if (s.non_empty) bad = std::string();
    else continue;
    SCOPED_TRACE(std::string(s.toml_key));
    const auto text = spec_with(s, toml_value(bad));
    const auto line = std::count(text.begin(), text.end(), '\n');  // the key is the last line
    try {
      (void)study::parse_spec(text, "spec.toml");
      ADD_FAILURE() << "accepted " << text;
    } catch (const ConfigError& e) {
      const auto why = range_error(s, bad);
      ASSERT_TRUE(why);
      EXPECT_EQ(std::string(e.what()), fmt::format("spec.toml:{}: '{}' {}", line, s.toml_key, *why));
    }
  }
}

TEST(SettingsConsumers, TheSpecDocsListEveryKey) {
  const auto& keys = study::spec_keys();
  for (const auto& s : settings()) {
    if (s.toml_key.empty()) continue;
    const auto it = std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.key == s.toml_key; });
    ASSERT_NE(it, keys.end()) << s.toml_key;
    EXPECT_EQ(it->type, type_name(s.type));
    EXPECT_EQ(it->default_value, default_text(s));
  }
}

}  // namespace
}  // namespace powertrain::run
