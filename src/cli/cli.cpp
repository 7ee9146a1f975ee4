// `powertrain`: the commands that train nothing run here, without LibTorch;
// those that train are handed over to `powertrain-train` (dispatch.h).
#include "powertrain/cli/cli.h"

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "commands.h"
#include "dispatch.h"
#include "powertrain/error.h"

namespace powertrain::cli {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

int run_app(CLI::App& app, Context& ctx, int argc, char** argv, const ErrorTranslator& translate) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, not CLI11's multi-line help dump. `powertrain --bogus` names
    // the option rather than the missing subcommand.
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      std::fprintf(stderr, "powertrain: unknown option or command '%s' (see --help)\n", app.remaining().front().c_str());
      return 2;
    }
    std::fprintf(stderr, "powertrain: %s (see --help)\n", e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "powertrain: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "powertrain: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    if (translate)
      if (const auto code = translate(e)) return *code;
    std::fprintf(stderr, "powertrain: internal error: %s\n", first_line(e.what()).c_str());
    return 70;
  }
  return ctx.exit_code;
}

int run_cli(int argc, char** argv) {
  if (const auto* command = training_command_of(argc, argv)) {
    try {
      hand_over(*command, argv);
    } catch (const Error& e) {
      std::fprintf(stderr, "powertrain: %s\n", e.what());
      return 1;
    }
  }
  CLI::App app{kAbout};
  // Named, not loaded: the LibTorch built against, as the build found it.
  app.set_version_flag("--version", version_text(POWERTRAIN_LIBTORCH_LINE));
  app.require_subcommand(1);
  Context ctx;
  // In the order of the training executable's (run_training_cli), so that
  // --help lists the same commands the same way.
  add_devices_command(app, ctx);
  add_measure_command(app, ctx);
  add_burn_command(app, ctx);
  for (const char* name : {"train", "sweep", "study", "search"}) add_handed_over_command(app, name, argv);
  add_results_command(app, ctx);
  add_report_command(app, ctx);
  add_handed_over_command(app, "slurm-task", argv);
  add_slurm_commands(app, ctx);
  return run_app(app, ctx, argc, argv);
}

}  // namespace powertrain::cli
