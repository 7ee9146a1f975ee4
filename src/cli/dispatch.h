#pragma once
// The two executables. `powertrain` links no LibTorch: it runs the commands
// that train nothing and hands each command that trains over to
// `powertrain-train`, installed beside it, which replaces it (execv: the same
// process, PID, signals, cgroup and terminal). `powertrain-train` runs every
// command.
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace powertrain::cli {

/// A command that trains: `powertrain` hands it over.
struct TrainingCommand {
  const char* name;
  const char* help;    ///< its one line in --help
  bool hidden = false; ///< not for users (not listed by --help)
};

/// Every command that trains, in the order --help lists them.
const std::vector<TrainingCommand>& training_commands();
/// The --help line of the training command `name` (std::logic_error if none is).
const char* training_help(std::string_view name);

/// The command named on this command line when it trains, else nullptr: the
/// first argument that is not an option (the top level has flags only).
const TrainingCommand* training_command_of(int argc, char** argv);

/// The training executable: `powertrain-train` in the folder of this process's
/// own executable.
std::string training_executable();
/// Replaces this process with the training executable, with the same
/// arguments and environment. Returns only by throwing ConfigError (one line)
/// when it is missing or cannot be started.
[[noreturn]] void hand_over(const TrainingCommand& command, char** argv);

/// The executable users run (`powertrain`, the one beside the training
/// executable when there is one, else this process's own): what a Slurm job
/// script starts.
std::string user_executable();

/// Registers `name` (a training command) as a command that hands over: listed
/// by --help like the real one, run by the training executable.
void add_handed_over_command(CLI::App& app, std::string_view name, char** argv);

/// The version text: powertrain's version and commit, then `libtorch_line`.
std::string version_text(const std::string& libtorch_line);

}  // namespace powertrain::cli
