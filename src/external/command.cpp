#include "powertrain/external/command.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/run/settings.h"

namespace powertrain::external {
namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const run::Setting* setting_named(std::string_view name) {
  for (const auto& s : run::settings())
    if (s.name == name) return &s;
  return nullptr;
}

// Placeholders that are no run setting, computed for each run: each follows
// the setting it is listed after (docs/external.md's order); "" : at the end.
struct Derived {
  const char* name;
  const char* after;
};
constexpr Derived kDerived[] = {{"encoder_checkpoint", "checkpoint"},
                                {"start_epoch", "save_state"},
                                {"python", "subset"},
                                {"master_port", ""},
                                {"rdzv_endpoint", ""}};

}  // namespace

const std::vector<std::string>& placeholder_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    auto add_derived_after = [&](std::string_view after) {
      for (const auto& d : kDerived)
        if (after == d.after) out.emplace_back(d.name);
    };
    for (const auto& s : run::settings()) {
      if (!s.placeholder) continue;
      out.emplace_back(s.name);
      add_derived_after(s.name);
    }
    add_derived_after("");
    return out;
  }();
  return names;
}

std::map<std::string, std::string> placeholder_values(const run::RunConfig& c, int start_epoch) {
  std::map<std::string, std::string> values;
  for (const auto& s : run::settings())
    if (s.placeholder) values.emplace(s.name, run::text(s, c));
  // A command that is not distributed runs as one process.
  values["nproc_per_node"] = std::to_string(std::max(1, c.command.nproc_per_node));
  values["encoder_checkpoint"] = c.checkpoint.empty() ? "" : run::encoder_checkpoint_path(c.checkpoint).string();
  values["start_epoch"] = std::to_string(start_epoch);
  values["python"] = python_interpreter();
  values["master_port"] = std::to_string(master_port(c.command.nnodes));
  values["rdzv_endpoint"] = fmt::format("{}:{}", rendezvous_host(c.command.nnodes), master_port(c.command.nnodes));
  return values;
}

int master_port(int nnodes) {
  if (const char* p = std::getenv("POWERTRAIN_MASTER_PORT"); p && *p) {
    char* end = nullptr;
    const long port = std::strtol(p, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
      throw ConfigError(fmt::format("POWERTRAIN_MASTER_PORT={} is not a port number (1-65535)", p));
    return static_cast<int>(port);
  }
  if (nnodes > 1) {
    if (const char* job = std::getenv("SLURM_JOB_ID"); job && *job)  // every node derives the same one
      return 20000 + static_cast<int>(std::strtoull(job, nullptr, 10) % 20000);
  }
  static const int chosen = [] {  // trials of one powertrain run one after another: one port will do
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 29500;  // torch's default, where the kernel gives none
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
  }();
  return chosen;
}

std::string rendezvous_host(int nnodes) {
  if (const char* h = std::getenv("POWERTRAIN_RDZV_HOST"); h && *h) return h;
  if (nnodes > 1)
    if (const char* h = std::getenv("SLURM_LAUNCH_NODE_IPADDR"); h && *h) return h;
  return "localhost";
}

std::string python_interpreter() {
  if (const char* p = std::getenv("POWERTRAIN_PYTHON"); p && *p) return p;
#ifdef POWERTRAIN_BUILD_PYTHON_PATH
  if (std::string built = POWERTRAIN_BUILD_PYTHON_PATH; !built.empty() && std::filesystem::exists(built)) return built;
#endif
  return "python3";
}

std::string expand(std::string_view text, const std::map<std::string, std::string>& values) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '{' && i + 1 < text.size() && text[i + 1] == '{') {
      out += '{';
      ++i;
    } else if (ch == '}' && i + 1 < text.size() && text[i + 1] == '}') {
      out += '}';
      ++i;
    } else if (ch == '{') {
      const auto close = text.find('}', i);
      if (close == std::string_view::npos)
        throw ConfigError(fmt::format("command argument '{}': '{{' without '}}' (write {{{{ for a literal brace)", text));
      const std::string name(text.substr(i + 1, close - i - 1));
      const auto it = values.find(name);
      if (it == values.end()) {
        std::string valid;
        for (const auto& n : placeholder_names()) valid += (valid.empty() ? "{" : ", {") + n + "}";
        throw ConfigError(fmt::format("command argument '{}': unknown placeholder {{{}}} (valid: {})", text, name, valid));
      }
      out += it->second;
      i = close;
    } else if (ch == '}') {
      throw ConfigError(fmt::format("command argument '{}': '}}' without '{{' (write }}}} for a literal brace)", text));
    } else {
      out += ch;
    }
  }
  return out;
}

void validate(const run::Command& command) {
  if (command.argv.empty() || command.argv.front().empty())
    throw ConfigError("a command needs at least the program to run");
  run::RunConfig probe;
  probe.command = command;
  run::validate(probe);  // the ranges of nproc_per_node, nnodes and launcher (run/settings.h)
  if (!command.distributed() && (command.nnodes != 1 || !command.launcher.empty()))
    throw ConfigError("nodes and launcher go with processes per node (nproc_per_node)");
  probe.command = {};
  const auto values = placeholder_values(probe);
  for (const auto& a : command.argv) (void)expand(a, values);
  for (const auto& [name, value] : command.env) {
    if (name.empty() || name.find('=') != std::string::npos || name.find('\0') != std::string::npos)
      throw ConfigError(fmt::format("environment variable name '{}' is not valid", name));
    (void)expand(value, values);
  }
}

std::vector<std::string> expand_argv(const run::RunConfig& config, int start_epoch) {
  const auto values = placeholder_values(config, start_epoch);
  std::vector<std::string> program;
  for (const auto& a : config.command.argv) program.push_back(expand(a, values));
  const auto& c = config.command;
  if (!c.distributed() || program.empty()) return program;
  std::vector<std::string> out;
  if (c.launcher == "srun") {
    out = {"srun", fmt::format("--nodes={}", c.nnodes), fmt::format("--ntasks-per-node={}", c.nproc_per_node),
           "--kill-on-bad-exit=1"};
    out.insert(out.end(), program.begin(), program.end());
    return out;
  }
  // torchrun, as `python -m torch.distributed.run`: the program's own Python
  // when it is `python script.py ...` or `python -m module ...`.
  const auto name = std::filesystem::path(program.front()).filename().string();
  const bool python = name.rfind("python", 0) == 0 && program.size() > 1 &&
                      (program[1] == "-m" || program[1].empty() || program[1].front() != '-');
  out = {python ? program.front() : python_interpreter(), "-m", "torch.distributed.run",
         fmt::format("--nnodes={}", c.nnodes), fmt::format("--nproc_per_node={}", c.nproc_per_node)};
  if (c.nnodes == 1) {
    out.push_back("--standalone");
  } else {
    out.insert(out.end(), {"--rdzv-backend=c10d", "--rdzv-endpoint=" + values.at("rdzv_endpoint"),
                           "--rdzv-id=" + values.at("master_port")});
  }
  if (python) {
    out.insert(out.end(), program.begin() + 1, program.end());
  } else {
    out.push_back("--no-python");
    out.insert(out.end(), program.begin(), program.end());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> program_environment(const run::RunConfig& config,
                                                                     int start_epoch) {
  const auto values = placeholder_values(config, start_epoch);
  std::vector<std::pair<std::string, std::string>> env{{"POWERTRAIN_PROTOCOL", "1"}};
  // A segment's settings (a paused run continued) only when the run is one,
  // so that other runs' programs see what they always did.
  const bool segment = !config.resume_from.empty();
  for (const auto& name : placeholder_names()) {
    auto v = values.at(name);
    if (name == "start_epoch" && !segment) continue;
    if (const auto* s = setting_named(name)) {
      if (s->presence == run::Presence::when_set && !run::present(*s, config)) continue;
      if (s->type == run::SettingType::boolean) v = v == "true" ? "1" : "0";
    }
    env.emplace_back("POWERTRAIN_" + upper(name), v);
  }
  // powertrain in a Slurm step (a meter per node): the program inherits the
  // step's SLURM_PROCID, which is powertrain's task, not a rank of the
  // program. Named here so that the package tells the two apart (a program
  // powertrain starts through srun gets a step of its own).
  const auto slurm = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (!slurm("SLURM_STEP_ID").empty())
    env.emplace_back("POWERTRAIN_SLURM_TASK",
                     slurm("SLURM_JOB_ID") + "." + slurm("SLURM_STEP_ID") + "." + slurm("SLURM_PROCID"));
  for (const auto& [name, value] : config.command.env) env.emplace_back(name, expand(value, values));
  return env;
}

std::string display(const run::Command& command) {
  std::string out;
  for (const auto& a : command.argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && std::none_of(a.begin(), a.end(), [](char c) { return c == ' ' || c == '"' || c == '\''; });
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

}  // namespace powertrain::external
