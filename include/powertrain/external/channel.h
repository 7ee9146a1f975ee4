#pragma once
// The server side of the protocol (docs/external.md) for one program: a
// private Unix socket, its one connection, lines to events, events to a
// run::RunControl (windows, rule, records) and the replies. Used by the
// external workload and by `powertrain measure`; neither owns a second copy
// of this logic.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "powertrain/run/control.h"

namespace powertrain::external {

class EventChannel {
 public:
  /// Opens the socket in a new private folder (mode 0700) under $TMPDIR or /tmp.
  /// Throws WorkloadError when it cannot.
  EventChannel();
  ~EventChannel();
  EventChannel(const EventChannel&) = delete;
  EventChannel& operator=(const EventChannel&) = delete;

  /// The socket's path, for the program's POWERTRAIN_SOCKET.
  const std::string& path() const;
  /// The descriptor to poll for reading: the listening socket until the
  /// program connects, then the connection; -1 once it has closed.
  int poll_fd() const;
  /// Call when poll_fd() is readable: accepts, or reads and handles the
  /// events that arrived (a closed connection flushes an unterminated last
  /// line). Throws WorkloadError for a malformed event or one out of order;
  /// ConfigError/other errors from the control propagate.
  /// `expired`, when given, is asked after each event: once it says true the
  /// rest of what arrived is left unhandled (the run is ending on a deadline).
  void on_readable(run::RunControl& control, const std::function<bool()>& expired = {});
  /// Replies wait to be written (poll poll_fd() for writing too); the
  /// program takes them when it reads. A program that leaves more than 64 KiB
  /// of them unread fails its run (WorkloadError from on_readable).
  bool wants_write() const;
  /// Call when poll_fd() is writable: writes what the socket takes, never
  /// waiting. Throws WorkloadError when the connection is gone.
  void on_writable();
  /// Reads and drops what arrived (a run that is ending); accepts and
  /// closes like on_readable.
  void discard();
  /// The program connected; it closed its connection again.
  bool connected() const;
  bool closed() const;

  // What the events said.
  bool test_seen() const { return test_seen_; }
  bool stop_sent() const { return stop_sent_; }
  /// Progress showed a diverging loss; the run was ended diverged.
  bool diverged() const { return diverged_; }
  const std::string& framework() const { return framework_; }
  /// Delay from each timestamped epoch_start/epoch_end ("mono_ns") to its
  /// window boundary, in microseconds.
  const std::vector<double>& latency_us() const { return latency_us_; }

 private:
  void handle(const std::string& line, run::RunControl& control);
  std::string receive();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool test_seen_ = false, stop_sent_ = false, diverged_ = false;
  std::string framework_;
  std::vector<double> latency_us_;
};

}  // namespace powertrain::external
