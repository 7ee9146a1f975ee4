// TOML study specifications: parsing with key- and line-precise errors.
#include "powertrain/study/spec.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/records.h"
#include "powertrain/run/settings.h"
#include "powertrain/study/kind.h"
#include "powertrain/study/spec_reader.h"

namespace powertrain::study {

using detail::Parser;
using detail::Table;
using detail::require_unique;
using detail::join;
using detail::read_data_options;
using detail::type_name;

namespace {

// Reads the key of run setting `s` (run/settings.h) from its table `t` into
// `c`: a value of the wrong type or out of the setting's range fails at its line.
void read_setting(const Parser& p, Table& t, const run::Setting& s, run::RunConfig& c) {
  const auto key = s.toml_key.substr(s.toml_key.find('.') + 1);
  run::SettingValue v;
  switch (s.type) {
    case run::SettingType::integer:
      if (auto x = t.integer(key)) v = *x;
      else return;
      break;
    case run::SettingType::number:
    case run::SettingType::optional_number:
      if (auto x = t.number(key)) v = *x;
      else return;
      break;
    case run::SettingType::boolean:
      if (auto x = t.boolean(key)) v = *x;
      else return;
      break;
    case run::SettingType::text:
      if (auto x = t.string(key)) v = *x;
      else return;
      break;
    case run::SettingType::text_list:
      if (auto x = t.strings(key)) v = join(*x, ",");
      else return;
      break;
  }
  if (auto why = run::range_error(s, v)) p.fail(t.take(key), fmt::format("'{}' {}", s.toml_key, *why));
  run::set(s, c, v);
}

/// Every run setting of [section] but the swept ones when `skip_swept`; returns the keys skipped.
std::vector<std::string> read_settings(const Parser& p, Table& t, std::string_view section, run::RunConfig& c,
                                       bool skip_swept = false) {
  std::vector<std::string> skipped;
  for (const auto& s : run::settings()) {
    if (s.toml_key.empty() || s.toml_key.substr(0, s.toml_key.find('.')) != section) continue;
    if (skip_swept && s.swept) skipped.emplace_back(s.toml_key.substr(section.size() + 1));
    else read_setting(p, t, s, c);
  }
  return skipped;
}

/// [workload] and [training]: the run settings of every trial (the rows of
/// run/settings.h), the data options and the user's own program.
void parse_run_settings(const Parser& p, Table& top, StudySpec& spec) {
  auto& c = spec.base;
  c.seed = 0;
  if (const auto* w = top.table("workload")) {
    Table t(p, *w, "workload");
    read_settings(p, t, "workload", c);
    if (!c.command.distributed() && (w->contains("nnodes") || w->contains("launcher")))
      p.fail(w, "'workload.nnodes' and 'workload.launcher' go with 'workload.nproc_per_node'");
    if (const auto* d = t.table("data")) c.data_options = read_data_options(p, *d, "workload.data");
    // The user's own program instead of the built-in trainer (docs/external.md).
    if (auto argv = t.strings("command")) {
      const auto* n = t.take("command");
      if (argv->empty() || argv->front().empty()) p.fail(n, "'workload.command' needs at least the program to run");
      std::vector<std::string> builtin{"data"};
      for (const auto& s : run::settings())
        if (s.builtin_only && s.toml_key.rfind("workload.", 0) == 0) builtin.emplace_back(s.toml_key.substr(9));
      for (const auto& key : builtin)
        if (w->contains(key))
          p.fail(w->get(key), fmt::format("'workload.{}' is for the built-in trainer; a command loads its own data "
                                          "(pass settings as arguments)", key));
      c.dataset.clear();
      c.model.clear();
      c.command.argv = *argv;
      try {
        external::validate(c.command);
      } catch (const ConfigError& e) {
        p.fail(n, e.what());
      }
    }
    if (const auto* env = t.table("env")) {
      for (const auto& [k, v] : *env) {
        if (!v.is_string()) p.fail(&v, fmt::format("'workload.env.{}' must be a string, got {}", k.str(), type_name(v)));
        c.command.env.emplace_back(std::string(k.str()), v.as_string()->get());
      }
      std::sort(c.command.env.begin(), c.command.env.end());
      try {
        external::validate(c.command);
      } catch (const ConfigError& e) {
        p.fail(env, e.what());
      }
    }
    // torchrun over several nodes needs its ranks on the other nodes started
    // too, one powertrain per node (docs/cluster.md): not what a study's trial does.
    if (c.command.nnodes > 1 && c.command.launcher != "srun")
      p.fail(w, "'workload.nnodes' above 1 in a study needs launcher = \"srun\" (Slurm starts the ranks on every "
                "node); torchrun over several nodes is run by hand, a powertrain per node (docs/cluster.md)");
    if (c.command.empty() && c.command.distributed())
      p.fail(w, "'workload.nproc_per_node' goes with 'workload.command' (the built-in trainer is one process)");
    if (c.command.empty() && (!c.command.workdir.empty() || !c.command.env.empty()))
      p.fail(w, "'workload.workdir' and 'workload.env' go with 'workload.command'");
    t.finish({});
  }
  if (c.dataset.empty() && c.command.empty()) p.fail(nullptr, "'workload.dataset' must not be empty");

  if (const auto* tr = top.table("training")) {
    Table t(p, *tr, "training");
    // A grid sweeps the swept settings and a search chooses them: their keys are not used there.
    const auto& kind = study_kind(spec.kind);
    const auto swept = read_settings(p, t, "training", c, !kind.chooses_setup.empty());
    t.finish(swept, kind.chooses_setup);
  }
}

/// [execution]: how trials are run (not part of any trial's key).
void parse_execution(const Parser& p, Table& top, StudySpec& spec) {
  // [execution]
  if (const auto* ex = top.table("execution")) {
    Table t(p, *ex, "execution");
    auto& e = spec.execution;
    if (auto v = t.number("cooldown_s")) {
      if (!(*v >= 0.0) || *v > 86400) p.fail(t.take("cooldown_s"), "'execution.cooldown_s' must be between 0 and 86400");
      e.cooldown_s = *v;
    }
    if (auto v = t.number("warmup_s")) {
      if (!(*v >= 0.0) || *v > 86400) p.fail(t.take("warmup_s"), "'execution.warmup_s' must be between 0 and 86400");
      e.warmup_s = *v;
    }
    if (auto v = t.string("warmup_load")) {
      if (*v != "auto" && *v != "cpu" && *v != "device")
        p.fail(t.take("warmup_load"), fmt::format("'execution.warmup_load' must be auto, cpu or device, got '{}'", *v));
      e.warmup_load = *v;
    }
    if (auto v = t.integer("interval_ms")) {
      if (*v < 10 || *v > 60000) p.fail(t.take("interval_ms"), "'execution.interval_ms' must be between 10 and 60000");
      e.interval_ms = static_cast<int>(*v);
    }
    e.artifacts_dir = t.string("artifacts_dir").value_or("");
    if (auto v = t.integer("max_trials")) {
      if (*v < 1 || *v > 10000000) p.fail(t.take("max_trials"), "'execution.max_trials' must be between 1 and 10000000");
      e.max_trials = *v;
    }
    for (auto [key, field] : {std::pair{"timeout_s", &e.timeout_s}, std::pair{"idle_timeout_s", &e.idle_timeout_s},
                              std::pair{"grace_s", &e.grace_s}}) {
      if (auto v = t.number(key)) {
        if (!(*v >= 0.0) || *v > 30 * 86400.0)
          p.fail(t.take(key), fmt::format("'execution.{}' must be between 0 and 2592000", key));
        *field = *v;
      }
    }
    if (auto v = t.number("quiet_wait_s")) {
      if (!(*v >= 0.0) || *v > 7 * 86400.0)
        p.fail(t.take("quiet_wait_s"), "'execution.quiet_wait_s' must be between 0 and 604800");
      e.quiet_wait_s = *v;
    }
    if (auto v = t.number("quiet_cpus")) {
      if (!(*v >= 0.0) || *v > 1e6) p.fail(t.take("quiet_cpus"), "'execution.quiet_cpus' must be between 0 and 1000000");
      e.quiet_cpus = *v;
    }
    if (const auto* sl = t.table("slurm")) {
      Table st(p, *sl, "execution.slurm");
      auto& q = e.slurm;
      auto count = [&](const char* key, int& field, int lo, int hi) {
        if (auto v = st.integer(key)) {
          if (*v < lo || *v > hi)
            p.fail(st.take(key), fmt::format("'execution.slurm.{}' must be between {} and {}", key, lo, hi));
          field = static_cast<int>(*v);
        }
      };
      count("gpus_per_trial", q.gpus_per_trial, 0, 64);
      count("cpus_per_trial", q.cpus_per_trial, 0, 4096);
      count("trials_per_task", q.trials_per_task, 1, 10000);
      // Values go to sbatch as one argument each: no spaces or control characters.
      auto word = [&](const char* key, std::string& field) {
        if (auto v = st.string(key)) {
          if (v->empty() || std::any_of(v->begin(), v->end(), [](char c) { return c <= ' ' || c == 127; }))
            p.fail(st.take(key), fmt::format("'execution.slurm.{}' must be one word, e.g. \"16G\" or \"02:00:00\"", key));
          field = *v;
        }
      };
      word("memory", q.memory);
      word("time_limit", q.time_limit);
      if (auto v = st.boolean("exclusive")) q.exclusive = *v;
      if (auto v = st.strings("options")) {
        for (const auto& o : *v)
          if (o.rfind("-", 0) != 0 || std::any_of(o.begin(), o.end(), [](char c) { return c < ' ' || c == 127; }))
            p.fail(st.take("options"), fmt::format("'execution.slurm.options': '{}' is not an sbatch option (they start with -)", o));
        q.options = *v;
      }
      q.dir = st.string("dir").value_or("");
      st.finish({});
    }
    t.finish({});
  }
}

}  // namespace

StudySpec parse_spec(std::string_view text, std::string_view source, const std::optional<std::string>& expected) {
  Parser p{std::string(source)};
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", source, s.begin.line, s.begin.column, e.description()));
  }

  StudySpec spec;
  bool adopted = false;
  spec.source = std::string(source);
  spec.text = std::string(text);
  Table top(p, root, "");

  if (auto name = top.string("name")) {
    if (name->empty()) p.fail(top.take("name"), "'name' must not be empty");
    spec.name = *name;
  } else {
    spec.name = std::filesystem::path(std::string(source)).stem().string();
  }
  if (auto kind = top.string("kind")) {
    const auto* n = top.take("kind");
    const auto* info = find_study_kind(*kind);
    if (!info) p.fail(n, fmt::format("'kind' must be {}, got '{}'", study_kind_names(), *kind));
    spec.kind = *kind;
    // A spec another kind's command also runs (a grid spec searched: its lists are the space).
    adopted = expected && *expected != spec.kind && info->also_runs_as == *expected;
    if (expected && *expected != spec.kind && !adopted)
      p.fail(n, fmt::format("this is a {} study; this command runs {} studies", *kind, *expected));
  } else if (expected) {
    spec.kind = *expected;
  } else {
    p.fail(nullptr, fmt::format("'kind' is missing ({})", study_kind_names()));
  }
  spec.description = top.string("description").value_or("");

  // Seeds: a list, or a number of repeats (seeds 0 .. repeats-1).
  if (top.has("seeds") && top.has("repeats"))
    p.fail(top.take("repeats"), "give either 'seeds' or 'repeats', not both");
  if (auto seeds = top.integers("seeds")) {
    const auto* n = top.take("seeds");
    if (seeds->empty()) p.fail(n, "'seeds' must not be empty");
    spec.seeds.clear();
    for (auto s : *seeds) {
      if (s < 0) p.fail(n, "'seeds' must not be negative");
      spec.seeds.push_back(static_cast<std::uint64_t>(s));
    }
    require_unique(p, n, "seeds", spec.seeds);
  }
  if (auto repeats = top.integer("repeats")) {
    if (*repeats < 1 || *repeats > 1000) p.fail(top.take("repeats"), "'repeats' must be between 1 and 1000");
    spec.seeds.clear();
    for (std::int64_t s = 0; s < *repeats; ++s) spec.seeds.push_back(static_cast<std::uint64_t>(s));
  }
  if (auto ds = top.integer("data_seed")) {
    if (*ds < 0) p.fail(top.take("data_seed"), "'data_seed' must not be negative");
    spec.data_seed = static_cast<std::uint64_t>(*ds);
  }

  parse_run_settings(p, top, spec);
  const auto& kind = study_kind(spec.kind);
  KindParse kp{p, top, spec};
  kind.parse(kp);  // the kind's own tables
  parse_execution(p, top, spec);

  if (const auto n = planned_trial_count(spec); n > spec.execution.max_trials)
    p.fail(nullptr, fmt::format("the spec plans {} trials, more than execution.max_trials = {}; check its lists, "
                                "or raise execution.max_trials if you mean it",
                                n, spec.execution.max_trials));

  if (kind.finish) kind.finish(kp);
  // The other kinds' tables are refused.
  std::vector<std::string> other_tables;
  for (const auto* k : study_kinds())
    for (const auto& t : k->tables)
      if (std::find(kind.tables.begin(), kind.tables.end(), t) == kind.tables.end() &&
          std::find(other_tables.begin(), other_tables.end(), t) == other_tables.end())
        other_tables.push_back(t);
  top.finish(other_tables, fmt::format("a {} study", spec.kind));
  if (adopted) {
    const auto& runs_as = study_kind(*expected);
    if (runs_as.adopt) runs_as.adopt(kp);
  }
  return spec;
}

StudySpec load_spec(const std::filesystem::path& path, const std::optional<std::string>& expected) {
  // A directory opens as an empty stream: it would read as an empty spec, the default study.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(st)) throw IoError(fmt::format("{}: no such study specification", path.string()));
  if (std::filesystem::is_directory(st))
    throw IoError(fmt::format("{}: is a directory, not a study specification (a TOML file)", path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("{}: cannot read the study specification", path.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("{}: cannot read the study specification", path.string()));
  return parse_spec(ss.str(), path.string(), expected);
}

std::int64_t planned_trial_count(const StudySpec& s) { return study_kind(s.kind).planned_count(s); }

const std::vector<SpecKey>& spec_keys() {
  static const std::vector<SpecKey> keys = [] {
    std::vector<SpecKey> out = {
        {"name", "string", "the file's stem", "Study name, unique in the database; a study runs again under its name"},
        {"kind", "string", "the command's kind", "grid, pretrain, multitask or search"},
        {"description", "string", "\"\"", "Free text"},
        {"seeds", "array of integers", "[0]", "Training seeds: every configuration is trained once per seed"},
        {"repeats", "integer", "1", "Instead of seeds: seeds 0 .. repeats-1"},
        {"data_seed", "integer", "0", "Seed of the data layer (subsets, validation split, synthetic data), one for every trial"},
        {"workload.data.KEY", "string/number/boolean/array", "the data layer's", "Data options (run::data_option_keys), e.g. max_samples = 3000"},
        {"workload.command", "array of strings", "none", "Your own training program instead of the built-in trainer, with {placeholders} (docs/external.md)"},
        {"workload.env", "table of strings", "{}", "Environment variables added for the command ({placeholders} allowed)"},
        {"grid.batch_sizes", "array of integers", "[16, 64, 256, 512]", "Batch sizes swept"},
        {"grid.learning_rates", "array of floats", "[0.0001, 0.001, 0.01, 0.1]", "Learning rates swept"},
        {"pretrain.source", "table", "every class", "Pretraining task: {classes = [...]} or {tasks = [...]}, optional data = {...}, name"},
        {"pretrain.steps", "array of tables", "required", "Downstream tasks, one per recycling step, as pretrain.source"},
        {"pretrain.variants", "array of strings", "[\"scratch\", \"finetune\", \"frozen\"]", "How each step is trained"},
        {"multitask.tasks", "array of strings", "required (2 or more)", "Tasks: CelebA attributes, or derived tasks of single-label data (data/multitask.h)"},
        {"execution.cooldown_s", "float", "0", "Idle seconds before each trial after the first"},
        {"execution.warmup_s", "float", "0", "Seconds of load before each trial"},
        {"execution.warmup_load", "string", "\"auto\"", "auto (the trial's device), cpu or device"},
        {"execution.interval_ms", "integer", "100", "Energy sampling interval"},
        {"execution.artifacts_dir", "string", "\"<db>.artifacts/<name>\"", "Where pretrained encoders are written"},
        {"execution.max_trials", "integer", "10000", "Largest plan accepted; a spec planning more is refused before anything is written"},
        {"execution.timeout_s", "float", "0 (none)", "A command's longest run; past it the trial fails"},
        {"execution.idle_timeout_s", "float", "0 (none)", "A command's longest silence between events; past it the trial fails"},
        {"execution.quiet_wait_s", "float", "0 (none)", "Before every trial, wait up to this long for other processes to leave the CPUs"},
        {"grid.metric_tolerance", "float", "0.01", "Without training.target_metric: setups within this of the top metric qualify; the cheapest is chosen"},
        {"search.batch_sizes", "array of integers", "(search) required, or batch_size_range", "Batch sizes a search chooses from (a grid spec: grid.batch_sizes)"},
        {"search.batch_size_range", "array of 2 integers", "-", "[low, high]: the powers of two between"},
        {"search.learning_rates", "array of floats", "(search) required, or learning_rate_range", "Learning rates a search chooses from (a grid spec: grid.learning_rates)"},
        {"search.learning_rate_range", "array of 2 floats", "-", "[low, high]: learning rates drawn log-uniform, three significant digits"},
        {"search.threads", "array of integers", "training.threads", "CPU threads a search chooses from"},
        {"search.strategy", "string", "halving", "halving (successive halving over rungs of epochs) or random (whole runs in random order)"},
        {"search.setups", "integer", "16 (at most the space's size)", "Setups sampled: the budget in trials"},
        {"search.budget_j", "float", "none", "Energy budget in joules: no segment starts once the search spent it"},
        {"search.min_epochs", "integer", "1", "Epochs of the first rung"},
        {"search.eta", "float", "4", "Each rung keeps the best 1/eta of its setups; rungs grow eta-fold in epochs"},
        {"search.beta", "float", "2", "Stop a setup predicted to need more than beta x the best energy to the target (Zeus)"},
        {"search.seed", "integer", "0", "Which setups are sampled, in what order"},
        {"search.energy_tie", "float", "0.05", "Energies to the target within this fraction of the least are a tie, chosen by fewer epochs, then the better metric"},
        {"search.metric_tolerance", "float", "grid.metric_tolerance", "Without a target: setups within this of the best metric qualify"},
        {"execution.slurm.gpus_per_trial", "integer", "0", "GPUs per array task (--gres=gpu:N)"},
        {"execution.slurm.cpus_per_trial", "integer", "0 (Slurm's default)", "CPUs per array task (--cpus-per-task)"},
        {"execution.slurm.memory", "string", "Slurm's default", "Memory per array task (--mem)"},
        {"execution.slurm.time_limit", "string", "the partition's", "Time limit per array task (--time)"},
        {"execution.slurm.exclusive", "boolean", "false", "Whole nodes per task (--exclusive), so node-wide energy is the trial's alone"},
        {"execution.slurm.trials_per_task", "integer", "1", "Trials one array task runs in turn"},
        {"execution.slurm.options", "array of strings", "[]", "Further sbatch options, e.g. [\"--partition=gpu\"]"},
        {"execution.slurm.dir", "string", "<db>.slurm/<name>", "Shared folder for job files, result files and logs"},
        {"execution.quiet_cpus", "float", "0.5", "Other processes' CPU use (in CPUs) at or below which the machine counts as quiet"},
        {"execution.grace_s", "float", "60", "Seconds a command has after the stop reply to send its test metric and exit"},
    };
    // The run settings' keys (run/settings.h), after the workload's own.
    auto at = std::find_if(out.begin(), out.end(), [](const SpecKey& k) { return k.key == "workload.env"; }) + 1;
    for (const auto& s : run::settings()) {
      if (s.toml_key.empty()) continue;
      std::string meaning(s.help);
      if (s.swept) meaning += " (pretrain and multitask studies: a grid sweeps it, a search chooses it)";
      if (const auto range = run::range_text(s); !range.empty()) meaning += "; " + range;
      at = out.insert(at, {std::string(s.toml_key), std::string(run::type_name(s.type)), run::default_text(s), meaning}) + 1;
    }
    return out;
  }();
  return keys;
}

}  // namespace powertrain::study
