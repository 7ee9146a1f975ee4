#include "powertrain/cli/cli.h"

#include <cstdio>
#include <exception>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/error.h"
#include "powertrain/train/device.h"
#include "powertrain/train/device.h"

namespace powertrain::cli {

int run_cli(int argc, char** argv) {
  CLI::App app{"powertrain: measure, explain and cut the energy of neural-network training"};
  // The LibTorch line asks CUDA for its devices, so it is built only when asked.
  app.set_version_flag("--version", [] {
    return fmt::format("powertrain {} ({})\nLibTorch {}: {}", POWERTRAIN_VERSION, POWERTRAIN_GIT_COMMIT,
                       train::torch_version(), train::describe(train::cuda_support()));
  });
  app.require_subcommand(1);
  Context ctx;
  add_devices_command(app, ctx);
  add_measure_command(app, ctx);
  add_burn_command(app, ctx);
  add_train_command(app, ctx);
  add_study_commands(app, ctx);
  add_report_command(app, ctx);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not CLI11's multi-line help dump.
    std::fprintf(stderr, "powertrain: %s (see --help)\n", e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "powertrain: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "powertrain: internal error: %s\n", e.what());
    return 70;
  }
  return ctx.exit_code;
}

}  // namespace powertrain::cli
