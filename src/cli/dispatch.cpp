#include "dispatch.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

#include "powertrain/error.h"

namespace powertrain::cli {
namespace fs = std::filesystem;

namespace {

// The folder of this process's own executable; empty when /proc cannot tell.
fs::path own_folder() {
  std::error_code ec;
  const auto self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

bool is_executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

const std::vector<TrainingCommand>& training_commands() {
  static const std::vector<TrainingCommand> commands{
      {"train",
       "Train one model (built in, or your own program after --), measured epoch by epoch, and record it in the store"},
      {"sweep", "Grid study: batch sizes x learning rates, each trained to convergence and measured"},
      {"study", "Run one of the paper's studies (resumable; see docs/studies.md)"},
      {"search",
       "Search for the setup with the least energy to the target without training the whole grid (docs/search.md)"},
      {"slurm-task", "Run one array task of a study submitted with --slurm (sbatch runs it)", true},
  };
  return commands;
}

const char* training_help(std::string_view name) {
  for (const auto& c : training_commands())
    if (name == c.name) return c.help;
  throw std::logic_error(fmt::format("no training command named '{}'", name));
}

const TrainingCommand* training_command_of(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.empty() || arg.front() == '-') continue;
    const auto& all = training_commands();
    const auto it = std::find_if(all.begin(), all.end(), [&](const TrainingCommand& c) { return arg == c.name; });
    return it == all.end() ? nullptr : &*it;
  }
  return nullptr;
}

std::string training_executable() { return (own_folder() / "powertrain-train").string(); }

void hand_over(const TrainingCommand& command, char** argv) {
  const auto exe = training_executable();
  if (!is_executable(exe))
    throw ConfigError(fmt::format("`{}` needs the training part of powertrain, {}, which is missing: reinstall "
                                  "powertrain (both executables) or build it with scripts/build",
                                  command.name, exe));
  std::fflush(nullptr);
  ::execv(exe.c_str(), argv);
  throw ConfigError(fmt::format("`{}`: cannot start the training part of powertrain, {}: {}", command.name, exe,
                                std::strerror(errno)));
}

std::string user_executable() {
  const auto folder = own_folder();
  if (folder.empty()) throw IoError("cannot find powertrain's own executable (/proc/self/exe)");
  const auto light = folder / "powertrain";
  if (is_executable(light)) return light.string();
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).string();
}

void add_handed_over_command(CLI::App& app, std::string_view name, char** argv) {
  const auto it = std::find_if(training_commands().begin(), training_commands().end(),
                               [&](const TrainingCommand& c) { return name == c.name; });
  if (it == training_commands().end()) throw std::logic_error(fmt::format("no training command named '{}'", name));
  const TrainingCommand& command = *it;
  auto* cmd = app.add_subcommand(command.name, command.help);
  if (command.hidden) cmd->group("");
  // Its arguments are the training executable's to parse.
  cmd->prefix_command();
  cmd->allow_extras();
  cmd->callback([&command, argv] { hand_over(command, argv); });
}

std::string version_text(const std::string& libtorch_line) {
  return fmt::format("powertrain {} ({})\n{}", POWERTRAIN_VERSION, POWERTRAIN_GIT_COMMIT, libtorch_line);
}

}  // namespace powertrain::cli
