#pragma once
// Listens, on a thread of its own, for the protocol of docs/external.md: when
// the measured command reports its epochs, each one is a window of the
// measurement. It never tells the command to stop (no convergence rule:
// measure only watches); a malformed event ends the breakdown with a note,
// not the command.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "powertrain/energy/tracker.h"
#include "powertrain/external/channel.h"
#include "powertrain/run/control.h"

namespace powertrain::measure {

class EpochListener {
 public:
  EpochListener();  // opens the socket
  ~EpochListener();
  EpochListener(const EpochListener&) = delete;
  EpochListener& operator=(const EpochListener&) = delete;
  /// The socket the command is told of (POWERTRAIN_SOCKET).
  const std::string& socket_path() const { return channel_.path(); }
  /// Starts listening once the meters run.
  void start(energy::Tracker& tracker);
  /// Ends listening (after the command exited) and returns the epochs.
  std::vector<run::EpochRecord> stop();
  /// Why the breakdown stopped early, if it did.
  const std::string& note() const { return note_; }

 private:
  void loop();
  external::EventChannel channel_;
  run::RecordingObserver recorder_;
  std::unique_ptr<run::RunControl> control_;
  std::atomic<bool> done_{false};
  int wake_fd_ = -1;  ///< an eventfd: stop() wakes the thread at once
  std::string note_;
  std::thread thread_;
};

}  // namespace powertrain::measure
