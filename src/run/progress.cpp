#include "powertrain/run/progress.h"

#include "powertrain/io/text.h"

#include <cmath>
#include <string>

#include <fmt/format.h>

namespace powertrain::run {

ProgressPrinter::ProgressPrinter(std::FILE* out, bool terminal, std::string label)
    : out_(out), terminal_(terminal), label_(io::printable(label)) {}

void ProgressPrinter::on_start(const RunConfig& config, const Environment& environment) {
  max_epochs_ = config.max_epochs;
  energy_j_ = 0.0;
  std::string what = config.model + " on " + config.dataset;
  if (!config.command.empty()) {
    what = "`";
    for (const auto& a : config.command.argv) what += (what.size() > 1 ? " " : "") + a;
    what += "`";
  }
  fmt::print(out_, "{}: {} ({}), batch {}, lr {}, {} threads\n", label_, what, config.device, config.batch_size,
             config.learning_rate, environment.threads);
  std::fflush(out_);
}

void ProgressPrinter::on_batch(const BatchProgress& p) {
  if (!terminal_) return;
  const double pct = p.steps > 0 ? 100.0 * static_cast<double>(p.step) / static_cast<double>(p.steps) : 0.0;
  fmt::print(out_, "\r\033[K{}: epoch {}/{} {:5.1f}%  loss {}  {:.1f} J so far", label_, p.epoch, max_epochs_, pct,
             io::number(p.running_loss), energy_j_);
  std::fflush(out_);
  live_line_ = true;
}

void ProgressPrinter::on_epoch(const EpochRecord& e) {
  energy_j_ += e.energy_j;
  if (live_line_) fmt::print(out_, "\r\033[K");
  live_line_ = false;
  // A program of the user's may leave out the samples and the losses (docs/external.md):
  // what it did not send is not shown (rather than as 0 samples/s or a loss of nan).
  std::string optional;
  if (e.samples_per_s > 0) optional += fmt::format("  {:8.0f} samples/s", e.samples_per_s);
  if (!std::isnan(e.train_loss)) optional += fmt::format("  loss {}", io::number(e.train_loss));
  if (!std::isnan(e.val_loss)) optional += fmt::format("  val loss {}", io::number(e.val_loss));
  fmt::print(out_, "{}: epoch {:>3}  {:7.2f} s  {:10.1f} J ({})  {:7.1f} W{}  val metric {}\n", label_, e.epoch,
             e.duration_s, e.energy_j, e.method, e.duration_s > 0 ? e.energy_j / e.duration_s : 0.0, optional,
             io::number(e.val_metric));
  if (e.forecast && e.forecast->method != "stopped") {
    const auto& f = *e.forecast;
    // Say how it was made unless it is the plain curve fit: the bound, the
    // study prior, a method a backtest chose (predict/study.h).
    const std::string how = f.method.starts_with("too few epochs") ? " (bounds: too few epochs to fit a curve)"
                            : f.method == "curve-ensemble"        ? ""
                                                                  : " (" + f.method + ")";
    fmt::print(out_, "{}: predicted: {:.0f} J to convergence [{:.0f}, {:.0f}], stopping after epoch {:.0f} [{:.0f}, {:.0f}]{}{}\n",
               label_, f.energy_j, f.energy_low_j, f.energy_high_j, f.stop_epoch, f.stop_epoch_low, f.stop_epoch_high,
               f.target_energy_j ? fmt::format("; to the target {:.0f} J ({:.0f}% of futures reach it)",
                                               *f.target_energy_j, 100 * f.p_reach_target)
                                 : "",
               how);
  }
  std::fflush(out_);
}

void ProgressPrinter::on_end(const RunSummary& s) {
  if (live_line_) fmt::print(out_, "\r\033[K");
  live_line_ = false;
  fmt::print(out_, "{}: {} after {} epochs, {:.1f} s, {:.1f} J ({}), best epoch {}, test metric {}{}\n", label_,
             to_string(s.status), s.epochs, s.duration_s, s.energy_j, s.method, s.best_epoch, io::number(s.test_metric),
             s.message.empty() ? "" : " (" + io::printable(s.message.substr(0, s.message.find('\n'))) + ")");
  if (s.cpu && s.cpu->material())
    fmt::print(out_,
               "{}: busy machine: other processes used {:.0f}% of the CPU time while it ran ({:.1f} of {:.1f} "
               "CPU-s); the energy above is the run's own share, the meters read {:.1f} J\n",
               label_, 100 * s.cpu->others_share(), s.cpu->others_s(), s.cpu->machine_s, s.machine_energy_j);
  std::fflush(out_);
}

}  // namespace powertrain::run
