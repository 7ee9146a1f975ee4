// A node's meter for a program another powertrain started (powertrain/external/node_meter.h).
#include "powertrain/external/node_meter.h"

#include <errno.h>
#include <poll.h>

#include <chrono>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/external/channel.h"
#include "powertrain/external/command.h"
#include "powertrain/run/environment.h"

namespace powertrain::external {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

NodeMeterWorkload::NodeMeterWorkload(run::RunConfig config, NodeMeterOptions options)
    : config_(std::move(config)), options_(std::move(options)) {
  if (!(options_.linger_s >= 0.0)) throw ConfigError(fmt::format("linger_s must be >= 0, got {}", options_.linger_s));
}

int NodeMeterWorkload::threads() const { return config_.threads > 0 ? config_.threads : run::available_cpus(); }

std::string NodeMeterWorkload::framework() const {
  return "external, this node's ranks of: " + display(config_.command);
}

void NodeMeterWorkload::run(run::RunControl& control) {
  if (control.status() != run::RunStatus::running) return;
  EventChannel channel;
  if (options_.publish) options_.publish(channel.path());
  std::optional<Clock::time_point> ended_at;
  auto last_look = Clock::now() - std::chrono::seconds(1);
  std::string failure;
  for (;;) {
    if (control.stop_requested()) {
      const int n = control.epochs_done() + 1;
      control.interrupt(control.epoch_open() ? fmt::format("interrupted in epoch {}", n)
                                             : fmt::format("interrupted before epoch {}", n));
      return;
    }
    if (channel.closed()) break;
    if (!ended_at && options_.run_ended && seconds_since(last_look) >= 0.5) {
      last_look = Clock::now();
      if (options_.run_ended()) ended_at = Clock::now();
    }
    // Ended without a rank here (it never started, or failed before its
    // first event), or one that does not let go.
    if (ended_at && (!channel.connected() || seconds_since(*ended_at) > options_.linger_s)) break;

    const int fd = channel.poll_fd();
    if (fd < 0) break;
    pollfd p{fd, static_cast<short>(POLLIN | (channel.wants_write() ? POLLOUT : 0)), 0};
    const int r = ::poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) throw WorkloadError(fmt::format("poll failed: {}", std::strerror(errno)));
    if (r <= 0) continue;
    try {
      if (p.revents & POLLOUT) channel.on_writable();
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) channel.on_readable(control);
    } catch (const WorkloadError& e) {
      failure = e.what();
      break;
    }
  }
  if (!failure.empty()) throw WorkloadError(fmt::format("this node's rank of the program: {}", failure));
  if (control.epoch_open())
    throw WorkloadError(fmt::format("this node's rank of the program stopped reporting inside epoch {}{}",
                                    control.epochs_done() + 1,
                                    channel.closed() ? " (its connection ended)" : " (the primary node's run ended)"));
  if (control.epochs_done() < control.first_epoch())
    throw WorkloadError(channel.connected() ? "this node's rank of the program reported no epoch"
                                            : "no rank of the program on this node connected to its meter");
  control.end_early(fmt::format("ended with the primary node's decision after epoch {}", control.epochs_done()));
}

}  // namespace powertrain::external
