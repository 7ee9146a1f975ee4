#include "powertrain/cli/cli.h"

#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include <c10/util/Exception.h>

#include <fmt/format.h>

#include "commands.h"
#include "powertrain/error.h"
#include "powertrain/train/device.h"
#include "powertrain/train/device.h"

namespace powertrain::cli {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

}  // namespace

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
  add_slurm_commands(app, ctx);
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
  } catch (const c10::OutOfMemoryError& e) {
    // LibTorch's message goes on with a backtrace: its first line is the news.
    std::fprintf(stderr, "powertrain: out of memory: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const c10::Error& e) {
    const std::string what = first_line(e.what_without_backtrace());
    // The CPU allocator reports a failed allocation as a plain c10::Error.
    if (what.find("can't allocate memory") != std::string::npos) {
      const auto at = what.find("you tried to allocate");
      std::fprintf(stderr, "powertrain: out of memory: %s\n",
                   (at == std::string::npos ? what : what.substr(at)).c_str());
      return 1;
    }
    std::fprintf(stderr, "powertrain: internal error: %s\n", what.c_str());
    return 70;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "powertrain: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "powertrain: internal error: %s\n", first_line(e.what()).c_str());
    return 70;
  }
  return ctx.exit_code;
}

}  // namespace powertrain::cli
