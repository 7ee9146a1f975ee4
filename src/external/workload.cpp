// The event loop of an external run: one thread polls the program's socket
// connection, its stdout and stderr, its exit and the clocks.
#include "powertrain/external/workload.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/external/channel.h"
#include "powertrain/external/command.h"
#include "powertrain/external/process.h"
#include "powertrain/external/protocol.h"
#include "powertrain/io/text.h"
#include "powertrain/run/environment.h"
#include "powertrain/run/records.h"

namespace powertrain::external {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }


// The last lines of the program's stderr.
class Tail {
 public:
  explicit Tail(int lines) : max_(lines > 0 ? static_cast<std::size_t>(lines) : 0) {}
  void add(const char* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (data[i] == '\n') {
        push();
      } else if (cur_.size() < 2004) {
        cur_ += data[i];
      }
    }
  }
  std::string text() {
    if (!cur_.empty()) push();
    std::string out;
    for (const auto& l : lines_) out += (out.empty() ? "" : "\n") + l;
    return out;
  }
  // The last line that is not blank (empty: none).
  std::string last() {
    if (!cur_.empty()) push();
    for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
      if (it->find_first_not_of(" \t") != std::string::npos) return *it;
    return {};
  }

 private:
  void push() {
    if (max_ == 0) return;
    if (!cur_.empty() && cur_.back() == '\r') cur_.pop_back();
    // Stored and shown as text: valid UTF-8 (a cut character or Latin-1
    // would make the store's JSON fail), a NUL (which would end the message
    // early) and other control characters escaped.
    cur_ = io::printable(io::valid_utf8(io::utf8_prefix(cur_, 2000)));
    lines_.push_back(std::move(cur_));
    cur_.clear();
    while (lines_.size() > max_) lines_.pop_front();
  }
  std::size_t max_;
  std::deque<std::string> lines_;
  std::string cur_;
};

}  // namespace

void validate(const CommandOptions& o) {
  for (const auto& [name, v] : {std::pair{"timeout_s", o.timeout_s}, std::pair{"idle_timeout_s", o.idle_timeout_s},
                                std::pair{"grace_s", o.grace_s}, std::pair{"kill_after_s", o.kill_after_s}})
    if (!(v >= 0.0)) throw ConfigError(fmt::format("{} must be >= 0, got {}", name, v));
}

CommandWorkload::CommandWorkload(run::RunConfig config, CommandOptions options)
    : config_(std::move(config)), options_(options) {
  validate(config_.command);
  validate(options_);
  run::validate(config_);  // the same checks as the built-in trainer's, before the program starts
}

int CommandWorkload::threads() const { return config_.threads > 0 ? config_.threads : run::available_cpus(); }

std::string CommandWorkload::framework() const { return "external: " + display(config_.command); }

namespace {

// One external run's event loop: the program's connection, its stdout and
// stderr, its exit, the deadlines and the escalation SIGTERM -> SIGKILL.
class Supervisor {
 public:
  Supervisor(run::RunControl& control, const CommandOptions& options, const run::RunConfig& config, Child& child,
             EventChannel& channel, std::string what)
      : control_(control),
        options_(options),
        config_(config),
        child_(child),
        channel_(channel),
        what_(std::move(what)),
        tail_(options.stderr_lines),
        started_(Clock::now()),
        last_event_(started_) {}

  // Runs until the program has exited and its output is drained.
  void loop() {
    for (;;) {
      escalate();
      watch_stop_and_deadlines();
      if (child_.poll_exit() && !exited_at_) exited_at_ = Clock::now();
      // After the program exits its output is drained; a grandchild that keeps
      // a pipe open is not waited for beyond a second.
      const bool drained =
          child_.stdout_fd() < 0 && child_.stderr_fd() < 0 && (channel_.closed() || !channel_.connected());
      if (exited_at_ && (drained || seconds_since(*exited_at_) > 1.0)) break;
      pump();
    }
  }

  // How the run ended, once loop() is over: nothing (it ended as recorded) or
  // a WorkloadError naming why it failed.
  void conclude() {
    // A process still running here (a grandchild that held the pipes) is killed by ~Child.
    const int st = child_.poll_exit().value_or(0);
    // One signal for both: Slurm's scancel (or a Ctrl-C in a terminal) sends
    // SIGTERM to the whole job, the program and powertrain alike; a program that
    // died of it may be seen before powertrain's own handler has set the flag.
    if (!interrupted_ && WIFSIGNALED(st) &&
        (WTERMSIG(st) == SIGTERM || WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGHUP)) {
      for (int i = 0; i < 50 && !control_.stop_requested(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!interrupted_ && control_.stop_requested()) interrupt();
    if (interrupted_) return;
    if (!failure_.empty()) throw WorkloadError(with_tail(failure_));
    if (channel_.diverged()) return;
    if (channel_.stop_sent()) {
      if (!channel_.test_seen())
        throw WorkloadError(with_tail(kill_at_ ? fmt::format("sent no test metric within the grace period of {} s "
                                                             "after the stop reply",
                                                             options_.grace_s)
                                              : std::string("exited without a test metric")));
      return;  // told to stop and finished; how it exited does not matter any more
    }
    if (!exited_cleanly(st)) throw WorkloadError(with_tail(describe_exit(st)));
    if (control_.epoch_open())
      throw WorkloadError(with_tail(fmt::format("exited inside epoch {}", control_.epochs_done() + 1)));
    if (control_.epochs_done() < control_.first_epoch())
      throw WorkloadError(with_tail("exited without reporting an epoch"));
    // A secondary node's program stops when the primary says so (the ranks
    // share rank 0's decision); its test metric, if any, is the primary's business.
    if (control_.follower()) {
      control_.end_early(fmt::format("ended with the primary node's decision after epoch {}", control_.epochs_done()));
      return;
    }
    if (!channel_.test_seen()) throw WorkloadError(with_tail("exited without a test metric"));
    // Ended by its own limit before powertrain's: not a run that reached max_epochs.
    if (control_.status() == run::RunStatus::running && control_.epochs_done() < config_.max_epochs)
      control_.end_early(fmt::format("the program ended on its own after epoch {} of {}, without a stop reply",
                                     control_.epochs_done(), config_.max_epochs));
  }

 private:
  // The first line says it all (consoles show only that line): the last line
  // the program wrote to stderr; the lines before it follow, for the store.
  std::string with_tail(const std::string& why) {
    const auto last = tail_.last();
    if (last.empty()) return fmt::format("{} {}", what_, why);
    return fmt::format("{} {}; its stderr ended with: {}\nits last stderr lines:\n{}", what_, why, last, tail_.text());
  }
  // A deadline `s` seconds from now; beyond any clock's range (huge, inf): never.
  static Clock::time_point after(double s) {
    constexpr double kNever = 1e9;  // about 32 years
    if (!(s < kNever)) return Clock::time_point::max();
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
  // SIGTERM at the earliest deadline asked for (a failure after a stop reply
  // does not wait out the grace period); nothing once it has been sent.
  void terminate_in(double grace) {
    if (kill_at_) return;
    const auto t = after(grace);
    if (!term_at_ || t < *term_at_) term_at_ = t;
  }
  void fail_and_stop(const std::string& why) {
    if (failure_.empty()) failure_ = why;
    terminate_in(0.0);
  }
  void interrupt() {
    interrupted_ = true;
    const int n = control_.epochs_done() + 1;
    control_.interrupt(control_.epoch_open() ? fmt::format("interrupted in epoch {}", n)
                                             : fmt::format("interrupted before epoch {}", n));
  }
  // Whether a deadline has passed: asked between the events of one read too.
  bool deadline_passed() const {
    const auto now = Clock::now();
    return control_.stop_requested() || (term_at_ && now >= *term_at_) || (kill_at_ && now >= *kill_at_) ||
           (options_.timeout_s > 0 && seconds_since(started_) > options_.timeout_s);
  }

  // SIGTERM to the process group when a deadline passes, SIGKILL kill_after_s later.
  void escalate() {
    const auto now = Clock::now();
    if (term_at_ && now >= *term_at_ && !kill_at_ && !child_.exited()) {
      child_.signal_group(SIGTERM);
      kill_at_ = after(options_.kill_after_s);
    }
    if (kill_at_ && now >= *kill_at_) child_.signal_group(SIGKILL);
  }

  void watch_stop_and_deadlines() {
    if (!interrupted_ && control_.stop_requested()) {
      interrupt();
      terminate_in(0.0);
    }
    if (failure_.empty() && !term_at_) {
      if (options_.timeout_s > 0 && seconds_since(started_) > options_.timeout_s)
        fail_and_stop(fmt::format("ran past its timeout of {} s", options_.timeout_s));
      else if (options_.idle_timeout_s > 0 && seconds_since(last_event_) > options_.idle_timeout_s)
        fail_and_stop(fmt::format("sent no event for {} s (idle_timeout_s)", options_.idle_timeout_s));
    }
    // A program that closed its connection without its test metric has
    // nothing more to say: it exits within two seconds (a process that is
    // ending closes first), or its run ends.
    if (channel_.closed() && !closed_at_) closed_at_ = Clock::now();
    if (closed_at_ && failure_.empty() && !interrupted_ && !channel_.test_seen() && !channel_.diverged() &&
        !child_.exited() && seconds_since(*closed_at_) > 2.0) {
      const int n = control_.epochs_done() + 1;
      fail_and_stop(control_.epoch_open()
                        ? fmt::format("closed its connection to powertrain in epoch {} and went on running", n)
                        : fmt::format("closed its connection to powertrain without sending its test metric and went "
                                      "on running"));
    }
  }

  // One poll of the connection and the output pipes, and what came in.
  void pump() {
    std::vector<pollfd> fds;
    const int events_fd = channel_.poll_fd();
    if (events_fd >= 0)
      fds.push_back({events_fd, static_cast<short>(POLLIN | (channel_.wants_write() ? POLLOUT : 0)), 0});
    if (child_.stdout_fd() >= 0) fds.push_back({child_.stdout_fd(), POLLIN, 0});
    if (child_.stderr_fd() >= 0) fds.push_back({child_.stderr_fd(), POLLIN, 0});
    const int r = ::poll(fds.data(), fds.size(), 20);
    if (r < 0 && errno != EINTR) throw WorkloadError(fmt::format("poll failed: {}", std::strerror(errno)));
    if (r <= 0) return;
    for (const auto& p : fds) {
      if (!(p.revents & (POLLIN | POLLOUT | POLLHUP | POLLERR))) continue;
      if (p.fd == events_fd)
        on_events(p.revents);
      else
        on_output(p.fd);
    }
  }

  void on_events(short revents) {
    if (!failure_.empty() || interrupted_) {  // ending: events no longer count, but are drained
      channel_.discard();
      return;
    }
    try {
      if (revents & POLLOUT) channel_.on_writable();
      if (revents & (POLLIN | POLLHUP | POLLERR)) {
        channel_.on_readable(control_, [this] { return deadline_passed(); });
        last_event_ = Clock::now();
      }
    } catch (const WorkloadError& err) {
      fail_and_stop(err.what());
      channel_.discard();
    }
    if (channel_.stop_sent()) terminate_in(options_.grace_s);
    if (channel_.diverged()) terminate_in(0.0);
  }

  void on_output(int fd) {
    const bool is_err = fd == child_.stderr_fd();
    const ssize_t n = ::read(fd, buf_, sizeof buf_);
    if (n > 0) {
      if (is_err) tail_.add(buf_, static_cast<std::size_t>(n));
      if (options_.output) {
        std::fwrite(buf_, 1, static_cast<std::size_t>(n), options_.output);
        std::fflush(options_.output);
      }
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (is_err) child_.close_stderr();
      else child_.close_stdout();
    }
  }

  run::RunControl& control_;
  const CommandOptions& options_;
  const run::RunConfig& config_;
  Child& child_;
  EventChannel& channel_;
  const std::string what_;
  Tail tail_;
  const Clock::time_point started_;
  Clock::time_point last_event_;
  bool interrupted_ = false;                              // powertrain was asked to stop
  std::optional<Clock::time_point> term_at_, kill_at_;    // escalation deadlines
  std::optional<Clock::time_point> exited_at_;
  std::optional<Clock::time_point> closed_at_;            // the program closed its connection
  std::string failure_;                                   // why the run failed (empty: it did not)
  char buf_[65536];
};

}  // namespace

void CommandWorkload::run(run::RunControl& control) {
  // A continued run whose earlier epochs already ended it (patience spent,
  // the epoch limit reached: RunControl::resume) has nothing to train.
  if (control.status() != run::RunStatus::running) return;
  EventChannel channel;
  ChildSpec spec;
  // A continued run's program reports its first epoch as first_epoch().
  spec.argv = expand_argv(config_, control.first_epoch());
  spec.workdir = config_.command.workdir;
  spec.env = program_environment(config_, control.first_epoch());
  spec.env.emplace_back("POWERTRAIN_SOCKET", channel.path());
  if (control.run_id() > 0) spec.env.emplace_back("POWERTRAIN_RUN_ID", std::to_string(control.run_id()));
  Child child(spec);
  Supervisor supervisor(control, options_, config_, child, channel, fmt::format("`{}`", display(config_.command)));
  supervisor.loop();
  hello_framework_ = channel.framework();
  latency_.us = channel.latency_us();
  supervisor.conclude();
}

}  // namespace powertrain::external
