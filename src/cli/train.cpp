// `powertrain train`: one training run, measured epoch by epoch, recorded in
// the store: the built-in trainer, or the user's own program after `--`.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <type_traits>
#include <variant>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "commands.h"
#include "dispatch.h"
#include "powertrain/data/load.h"
#include "powertrain/error.h"
#include "powertrain/external/command.h"
#include "powertrain/external/workload.h"
#include "powertrain/io/output.h"
#include "powertrain/io/text.h"
#include "powertrain/session/session.h"
#include "powertrain/run/nodes.h"
#include "powertrain/run/settings.h"
#include "powertrain/session/signals.h"
#include "powertrain/slurm/nodes.h"
#include "powertrain/store/store.h"
#include "powertrain/train/dataset_options.h"
#include "powertrain/train/trainer.h"

namespace powertrain::cli {
namespace {

struct TrainArgs {
  run::RunConfig config;
  std::string config_file;
  std::string db = "powertrain.db";
  int interval_ms = 100;
  std::vector<std::string> data_options;  // key=value
  bool quiet = false;
  std::vector<std::string> disable;
  // The user's own program.
  std::vector<std::string> command;
  std::vector<std::string> env;  // key=value
  external::CommandOptions command_options;
  // A run over several nodes (docs/cluster.md, "Several nodes").
  int node_rank = -1;
  int nodes = -1;
  std::string nodes_dir;
  double nodes_wait_s = 120.0;
};

// A secondary node of a run over several nodes: its own windows and epochs go
// to its node file; its rule never ends the run (the primary decides).
int run_secondary(TrainArgs& a, const run::NodeRole& role, const std::filesystem::path& dir,
                  session::SessionOptions so, run::Workload& workload) {
  const auto partial = slurm::claim_node_file(dir, role.rank);
  run::RunSummary s;
  {
    auto store = store::Store::open(partial, {.wal = false});  // a shared folder: no WAL
    session::StopOnSignals signals;
    so.stop = signals.flag();
    so.follow_primary = true;
    if (so.label.empty()) so.label = fmt::format("node {}", role.rank);
    session::RunSession session(store, so);
    s = session.run(a.config, workload).summary;
  }
  // Whole or not at all: the primary takes in only a finished file's name.
  slurm::finish_node_file(dir, role.rank);
  fmt::print("node {} of {} recorded in {}: {} epochs, {:.1f} J ({}); node 0 merges it into the run\n", role.rank,
             role.nodes, slurm::node_file(dir, role.rank).string(), s.epochs, s.energy_j, s.method);
  if (s.status == run::RunStatus::interrupted) return 130;
  if (s.status == run::RunStatus::failed)
    throw WorkloadError(fmt::format("node {} failed: {}", role.rank, s.message.substr(0, s.message.find('\n'))));
  return 0;
}

std::pair<std::string, std::string> key_value(const std::string& kv, const char* option) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) throw ConfigError(fmt::format("{} expects KEY=VALUE, got '{}'", option, kv));
  return {kv.substr(0, eq), kv.substr(eq + 1)};
}

// One TOML value as option arguments: scalars as text, arrays element by
// element, a table (data = { max_samples = 2000 }) as KEY=VALUE arguments.
std::vector<std::string> option_values(const toml::node& v, const std::string& where) {
  std::vector<std::string> out;
  auto scalar = [&](const toml::node& n, const std::string& prefix) {
    if (n.is_string()) {
      out.push_back(prefix + *n.value<std::string>());
    } else if (n.is_integer()) {
      out.push_back(prefix + std::to_string(*n.value<std::int64_t>()));
    } else if (n.is_floating_point()) {
      out.push_back(prefix + fmt::format("{}", *n.value<double>()));
    } else if (n.is_boolean()) {
      out.push_back(prefix + (*n.value<bool>() ? "true" : "false"));
    } else {
      throw ConfigError(fmt::format("{}: must be a string, a number, a boolean or an array of them", where));
    }
  };
  if (const auto* arr = v.as_array()) {
    for (const auto& e : *arr) scalar(e, "");
  } else if (const auto* tbl = v.as_table()) {
    for (const auto& [k, e] : *tbl) scalar(e, std::string(k.str()) + "=");
  } else {
    scalar(v, "");
  }
  return out;
}

// `train --config FILE`: every key is one of train's long options, written
// with '_' or '-' (batch_size = 48); options given on the command line win.
// A missing or unreadable file, a syntax error, an unknown key or a bad value
// is a one-line ConfigError.
void apply_config_file(CLI::App& cmd, const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) throw ConfigError(fmt::format("{}: no such config file", file));
  if (std::filesystem::is_directory(file, ec)) throw ConfigError(fmt::format("{}: is a directory, not a config file", file));
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw IoError(fmt::format("{}: cannot read the config file", file));
  toml::table root;
  try {
    root = toml::parse(text.str(), file);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw ConfigError(fmt::format("{}:{}:{}: {}", file, s.begin.line, s.begin.column, e.description()));
  }
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    const std::string where = fmt::format("{}:{}: '{}'", file, v.source().begin.line, key);
    std::string name = key;
    std::replace(name.begin(), name.end(), '_', '-');
    CLI::Option* opt = name == "config" || name == "help" ? nullptr : cmd.get_option_no_throw("--" + name);
    if (opt == nullptr && name == "command") opt = cmd.get_option_no_throw("command");
    if (opt == nullptr)
      throw ConfigError(fmt::format("{} is not an option of powertrain train (keys are its long options, e.g. batch_size)",
                                    where));
    if (opt->count() > 0) continue;  // the command line wins
    const auto values = option_values(v, where);
    if (values.size() != 1 && opt->get_expected_max() <= 1) throw ConfigError(fmt::format("{}: expects one value", where));
    try {
      opt->add_result(values);
      opt->run_callback();
    } catch (const CLI::ParseError& e) {
      throw ConfigError(fmt::format("{}: {}", where, e.what()));
    }
  }
}

int run_train(TrainArgs& a) {
  auto& c = a.config;
  for (const auto& kv : a.data_options) c.data_options.push_back(key_value(kv, "--data"));
  // Out-of-range numbers (--lr 1e300, --threads 100000) and an unwritable
  // checkpoint are one line now, not a failed run after the training.
  run::validate(c);
  check_source_names(a.disable);
  if (!c.checkpoint.empty()) {
    io::check_output(c.checkpoint, io::OutputRule{});
    io::check_output(run::encoder_checkpoint_path(c.checkpoint), io::OutputRule{});
  }
  session::SessionOptions so;
  so.interval = std::chrono::milliseconds(a.interval_ms);
  so.disabled_sources = a.disable;
  so.log = a.quiet ? nullptr : stderr;
  so.terminal = !a.quiet && ::isatty(STDERR_FILENO) != 0;

  // Which node this is of a run over several nodes (flags, or an srun step).
  const auto role = run::node_role(a.node_rank, a.nodes, env_var);
  if (role.nodes > 1 && a.command.empty())
    throw ConfigError("a run over several nodes trains your own program: give it after -- (e.g. torchrun ...)");

  // Validate and load before anything is written: bad input leaves the store untouched.
  std::unique_ptr<run::Workload> workload;
  std::optional<data::Dataset> dataset;
  if (!a.command.empty()) {
    if (!a.data_options.empty()) throw ConfigError("--data is for the built-in trainer; pass your program its own settings");
    c.dataset.clear();
    c.model.clear();
    c.command.argv = a.command;
    for (const auto& kv : a.env) c.command.env.push_back(key_value(kv, "--env"));
    external::validate(c.command);
    a.command_options.output = a.quiet ? nullptr : stderr;
    workload = std::make_unique<external::CommandWorkload>(c, a.command_options);
  } else {
    if (!c.command.workdir.empty() || !a.env.empty() || c.command.nproc_per_node > 0)
      throw ConfigError("--workdir, --env and --nproc-per-node go with a command after --");
    c.command = {};  // --nnodes and --launcher mean nothing without one
    dataset = data::load_dataset(train::dataset_options(c));
    workload = std::make_unique<train::Trainer>(c, *dataset);
  }
  std::filesystem::path nodes_dir;
  if (role.nodes > 1) {
    if (!(a.nodes_wait_s >= 0.0 && a.nodes_wait_s <= 86400.0))
      throw ConfigError(fmt::format("--nodes-wait must be between 0 and 86400 seconds, got {}", a.nodes_wait_s));
    if (!a.nodes_dir.empty()) nodes_dir = std::filesystem::absolute(a.nodes_dir);
    else if (role.from_slurm) nodes_dir = slurm::default_nodes_dir(a.db, env_var);
    else
      throw ConfigError("--nodes-dir DIR is needed with --nodes: a folder every node sees, one per run");
    if (!role.primary()) return run_secondary(a, role, nodes_dir, so, *workload);
    slurm::claim_primary(nodes_dir);
  } else if (!a.nodes_dir.empty()) {
    throw ConfigError("--nodes-dir goes with a run over several nodes (--node-rank and --nodes, or an srun step)");
  }
  auto store = store::Store::open(a.db);
  session::StopOnSignals signals;
  so.stop = signals.flag();
  if (role.nodes > 1) {
    so.on_run_start = [&](std::int64_t run_id) { store.set_run_nodes(run_id, role.nodes, nodes_dir.string()); };
    so.label = "node 0";
  }
  session::RunSession session(store, so);
  const auto out = session.run(c, *workload);
  auto s = out.summary;
  if (role.nodes > 1) {
    if (!a.quiet && a.nodes_wait_s > 0)
      fmt::print(stderr, "node 0: waiting up to {:.0f} s for the other {} nodes' records in {}\n", a.nodes_wait_s,
                 role.nodes - 1, nodes_dir.string());
    const auto m = slurm::merge_nodes(store, out.run_id, a.nodes_wait_s, signals.flag());
    print_node_merge(out.run_id, m, a.quiet);
    s = store.run(out.run_id).summary;  // the merged figures
  }
  fmt::print("run {} recorded in {}: {} after {} epochs, {:.1f} J ({}), test metric {}{}\n", out.run_id, a.db,
             run::to_string(s.status), s.epochs, s.energy_j, s.method, io::number(s.test_metric),
             role.nodes > 1 ? fmt::format(", {} nodes", role.nodes) : "");
  if (s.status == run::RunStatus::interrupted) return 130;
  if (s.status == run::RunStatus::failed) {
    // The reason's first line; the whole of it (the program's stderr) is in the store.
    const auto first = s.message.substr(0, s.message.find('\n'));
    throw WorkloadError(fmt::format("run {} failed: {}", out.run_id, first));
  }
  return 0;
}

// Every run setting with flags (run/settings.h), bound to its field in `c`;
// numbers and text show their default in --help.
void add_setting_options(CLI::App& cmd, run::RunConfig& c) {
  for (const auto& s : run::settings()) {
    if (s.flags.empty()) continue;
    const std::string flags(s.flags), help(s.help);
    std::visit(
        [&](auto* field) {
          using F = std::remove_pointer_t<decltype(field)>;
          if constexpr (std::is_same_v<F, bool>) {
            cmd.add_flag(flags, *field, help);
          } else {
            auto* o = cmd.add_option(flags, *field, help);
            if constexpr (std::is_same_v<F, std::string>) {
              if (!field->empty()) o->capture_default_str();
            } else if constexpr (!std::is_same_v<F, std::optional<double>>) {
              o->capture_default_str();
            }
          }
        },
        s.field(c));
  }
}

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", training_help("train"));
  cmd->add_option("--config", a->config_file,
                  "TOML file with any of these options as keys (e.g. batch_size = 64); the command line wins");
  add_setting_options(*cmd, a->config);
  cmd->add_option("--data", a->data_options, "Further dataset option KEY=VALUE, e.g. max_samples=2000 (repeatable)");
  cmd->add_option("--db", a->db, "Results database (SQLite)")->capture_default_str();
  cmd->add_option("--interval", a->interval_ms, "Sampling interval in ms")->capture_default_str();
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->add_option("--disable", a->disable, "Energy source to skip (repeatable), e.g. nvml")->allow_extra_args(false);
  cmd->add_option("--env", a->env, "Environment variable KEY=VALUE for the command (repeatable)")->allow_extra_args(false);
  cmd->add_option("--timeout", a->command_options.timeout_s, "The command's longest run in seconds (0: none)");
  cmd->add_option("--idle-timeout", a->command_options.idle_timeout_s,
                  "The command's longest silence between events in seconds (0: none)");
  cmd->add_option("--grace", a->command_options.grace_s,
                  "Seconds the command has after the stop reply to send its test metric and exit")
      ->capture_default_str();
  cmd->add_option("--node-rank", a->node_rank,
                  "This node's rank in a run over several nodes (0: the primary, which records the run); with --nodes");
  cmd->add_option("--nodes", a->nodes, "Nodes the run spans, one powertrain on each (inside srun: SLURM_NNODES)");
  cmd->add_option("--nodes-dir", a->nodes_dir,
                  "Folder every node sees, one per run, where the other nodes leave their records "
                  "(inside srun: <db>.nodes/job<id>.step<id>)");
  cmd->add_option("--nodes-wait", a->nodes_wait_s,
                  "Seconds node 0 waits for the other nodes' records after its run")
      ->capture_default_str();
  cmd->add_option("command", a->command,
                  "Your training program and its arguments, after --, with {placeholders} such as {batch_size} "
                  "(docs/external.md)");
  cmd->callback([&ctx, a, cmd] {
    if (!a->config_file.empty()) apply_config_file(*cmd, a->config_file);
    ctx.exit_code = run_train(*a);
  });
}

}  // namespace powertrain::cli
