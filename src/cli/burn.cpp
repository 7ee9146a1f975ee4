// `powertrain burn`: a built-in CPU load, for trying `powertrain measure` and the
// meters without a training script.
#include <thread>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/energy/workload.h"
#include "powertrain/error.h"

namespace powertrain::cli {

void add_burn_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("burn", "Keep CPUs busy with dense arithmetic for a while (a built-in workload)");
  auto seconds = std::make_shared<double>(3.0);
  auto threads = std::make_shared<int>(0);
  cmd->add_option("--seconds", *seconds, "How long to run")->capture_default_str();
  cmd->add_option("--threads", *threads, "Threads (0: one per logical CPU)")->capture_default_str();
  cmd->callback([&ctx, seconds, threads] {
    if (!(*seconds > 0) || *seconds > 86400) throw ConfigError("--seconds must be between 0 and 86400");
    if (*threads < 0 || *threads > 4096) throw ConfigError("--threads must be between 0 and 4096");
    const int n = *threads > 0 ? *threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const auto blocks = energy::burn(*seconds, n);
    fmt::print("burn: {} threads, {:.1f} s, {} blocks of work\n", n, *seconds, blocks);
    ctx.exit_code = 0;
  });
}

}  // namespace powertrain::cli
