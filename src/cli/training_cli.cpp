// `powertrain-train`: every command, those that train included, with LibTorch.
// `powertrain` hands the commands that train over to it (dispatch.h).
#include <exception>
#include <optional>
#include <string>

#include <c10/util/Exception.h>

#include <fmt/format.h>

#include "commands.h"
#include "dispatch.h"
#include "powertrain/cli/cli.h"
#include "powertrain/train/device.h"

namespace powertrain::cli {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// LibTorch's errors: out of memory is the user's news, the rest internal.
std::optional<int> translate_torch_error(const std::exception& e) {
  if (const auto* oom = dynamic_cast<const c10::OutOfMemoryError*>(&e)) {
    // LibTorch's message goes on with a backtrace: its first line is the news.
    std::fprintf(stderr, "powertrain: out of memory: %s\n", first_line(oom->what_without_backtrace()).c_str());
    return 1;
  }
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  if (error == nullptr) return std::nullopt;
  const std::string what = first_line(error->what_without_backtrace());
  // The CPU allocator reports a failed allocation as a plain c10::Error.
  if (what.find("can't allocate memory") != std::string::npos) {
    const auto at = what.find("you tried to allocate");
    std::fprintf(stderr, "powertrain: out of memory: %s\n", (at == std::string::npos ? what : what.substr(at)).c_str());
    return 1;
  }
  std::fprintf(stderr, "powertrain: internal error: %s\n", what.c_str());
  return 70;
}

}  // namespace

int run_training_cli(int argc, char** argv) {
  CLI::App app{kAbout};
  // The LibTorch line asks CUDA for its devices, so it is built only when asked.
  app.set_version_flag("--version", [] {
    return version_text(fmt::format("LibTorch {}: {}", train::torch_version(), train::describe(train::cuda_support())));
  });
  app.require_subcommand(1);
  Context ctx;
  add_devices_command(app, ctx);
  add_measure_command(app, ctx);
  add_burn_command(app, ctx);
  add_train_command(app, ctx);
  add_study_commands(app, ctx);
  add_results_command(app, ctx);
  add_report_command(app, ctx);
  add_slurm_task_command(app, ctx);
  add_slurm_commands(app, ctx);
  return run_app(app, ctx, argc, argv, translate_torch_error);
}

}  // namespace powertrain::cli
