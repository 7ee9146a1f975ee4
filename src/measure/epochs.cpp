#include "epochs.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <exception>

namespace powertrain::measure {
namespace {

run::RunConfig unlimited() {
  run::RunConfig c;
  c.max_epochs = 1 << 30;
  c.patience = 0;
  return c;
}

}  // namespace

EpochListener::EpochListener() : wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

EpochListener::~EpochListener() {
  (void)stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void EpochListener::start(energy::Tracker& tracker) {
  control_ = std::make_unique<run::RunControl>(unlimited(), tracker, recorder_);
  thread_ = std::thread([this] { loop(); });
}

std::vector<run::EpochRecord> EpochListener::stop() {
  if (thread_.joinable()) {
    done_ = true;
    const std::uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (control_) {
    (void)control_->finish();
    control_.reset();
  }
  return recorder_.epochs;
}

void EpochListener::loop() {
  // Once stop() is called (the command has exited), what it sent is read
  // before the thread ends: polls that find nothing more end it.
  for (;;) {
    const bool draining = done_;
    const int fd = channel_.poll_fd();
    if (fd < 0) return;
    pollfd p[2] = {{fd, static_cast<short>(POLLIN | (channel_.wants_write() ? POLLOUT : 0)), 0},
                   {wake_fd_, POLLIN, 0}};
    const nfds_t n = draining || wake_fd_ < 0 ? 1 : 2;
    if (::poll(p, n, draining ? 0 : 20) > 0 && p[0].revents != 0) {
      try {
        if (p[0].revents & POLLOUT) channel_.on_writable();
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) channel_.on_readable(*control_);
      } catch (const std::exception& e) {
        note_ = e.what();
        return;
      }
      continue;
    }
    if (draining) return;
  }
}

}  // namespace powertrain::measure
