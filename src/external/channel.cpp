// The protocol's server side: socket, lines, events, replies.
#include "powertrain/external/channel.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/external/protocol.h"

namespace powertrain::external {
namespace {

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A listening Unix socket in a private folder (mode 0700) of its own; both go
// when this object does.
class Listener {
 public:
  Listener() {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/powertrain-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw WorkloadError(fmt::format("cannot make a socket folder: {}", std::strerror(errno)));
    dir_ = tmpl;
    path_ = dir_ + "/events.sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(addr.sun_path)) {
      cleanup();
      throw WorkloadError(fmt::format("the socket path {} is too long (set TMPDIR to a shorter folder)", path_));
    }
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 4) != 0) {
      const int e = errno;
      cleanup();
      throw WorkloadError(fmt::format("cannot open the event socket: {}", std::strerror(e)));
    }
  }
  ~Listener() { cleanup(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  void cleanup() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove(path_, ec);
    // The folder may hold what the program's ranks shared through it
    // (powertrain._ranks: one decision file per epoch).
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_, path_;
  int fd_ = -1;
};

// Bytes to lines, with a limit on a line's length however the bytes arrive.
class LineBuffer {
 public:
  explicit LineBuffer(std::size_t max) : max_(max) {}
  void add(const char* data, std::size_t n) {
    buf_.append(data, n);
    if (buf_.find('\n', start_) == std::string::npos && buf_.size() - start_ > max_) overlong();
  }
  // The next complete line, if there is one. Throws WorkloadError for an overlong line.
  std::optional<std::string> next() {
    const auto nl = buf_.find('\n', start_);
    if (nl == std::string::npos) {
      compact();
      if (buf_.size() > max_) overlong();
      return std::nullopt;
    }
    if (nl - start_ > max_) overlong();
    std::string line = buf_.substr(start_, nl - start_);
    start_ = nl + 1;
    return line;
  }
  // The unterminated rest (at end of file).
  std::string rest() {
    compact();
    if (buf_.size() > max_) overlong();
    std::string r;
    r.swap(buf_);
    return r;
  }

 private:
  [[noreturn]] void overlong() const {
    throw WorkloadError(fmt::format("an event line is longer than {} bytes", max_));
  }
  void compact() {
    buf_.erase(0, start_);
    start_ = 0;
  }
  std::size_t max_;
  std::string buf_;
  std::size_t start_ = 0;
};

// Replies not yet taken by the program beyond what its socket buffers hold:
// a program that never reads them (the protocol says it must, before its next
// epoch) is failed, never waited for.
constexpr std::size_t kMaxQueuedReplyBytes = 64 * 1024;

}  // namespace

struct EventChannel::Impl {
  Listener listener;
  int conn = -1;
  bool closed = false;
  LineBuffer lines{kMaxLineBytes};
  std::string outbox;  // replies not yet written to the socket

  // Writes what the socket takes now, without waiting. Throws WorkloadError
  // when the connection is gone.
  void flush() {
    while (!outbox.empty() && conn >= 0) {
      const ssize_t n = ::send(conn, outbox.data(), outbox.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        outbox.erase(0, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        throw WorkloadError("the event socket closed before the reply");
      }
    }
    if (!outbox.empty() && conn < 0) throw WorkloadError("the event socket closed before the reply");
  }
};

EventChannel::EventChannel() : impl_(std::make_unique<Impl>()) {}

EventChannel::~EventChannel() {
  if (impl_->conn >= 0) ::close(impl_->conn);
}

const std::string& EventChannel::path() const { return impl_->listener.path(); }

int EventChannel::poll_fd() const {
  if (impl_->closed) return -1;
  return impl_->conn >= 0 ? impl_->conn : impl_->listener.fd();
}

bool EventChannel::closed() const { return impl_->closed; }
bool EventChannel::connected() const { return impl_->conn >= 0 || impl_->closed; }

// Accepts the program's connection, or reads what it sent (empty at end of
// file or when nothing was there; `closed` tells which).
std::string EventChannel::receive() {
  auto& im = *impl_;
  if (im.closed) return {};
  if (im.conn < 0) {
    // The first connection is the program's; later ones (a forked worker
    // that imported the package) are not served.
    im.conn = ::accept4(im.listener.fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    return {};
  }
  char buf[65536];
  const ssize_t n = ::recv(im.conn, buf, sizeof buf, 0);
  if (n > 0) return std::string(buf, static_cast<std::size_t>(n));
  if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK)) return {};
  ::close(im.conn);
  im.conn = -1;
  im.closed = true;
  return {};
}

void EventChannel::discard() { (void)receive(); }

void EventChannel::on_readable(run::RunControl& control, const std::function<bool()>& expired) {
  const auto data = receive();
  impl_->lines.add(data.data(), data.size());
  // Line by line, with the caller's deadlines between lines: a read holds up
  // to 64 KiB of events, whose records take time.
  while (auto line = impl_->lines.next()) {
    handle(*line, control);
    if (expired && expired()) return;
  }
  if (impl_->closed) {
    const auto rest = impl_->lines.rest();
    if (!rest.empty()) handle(rest, control);
  }
}

bool EventChannel::wants_write() const { return !impl_->outbox.empty() && impl_->conn >= 0; }

void EventChannel::on_writable() { impl_->flush(); }

void EventChannel::handle(const std::string& line, run::RunControl& control) {
  if (line.empty()) return;
  const Event e = parse_event(line);
  switch (e.kind) {
    case EventKind::hello: framework_ = e.framework; break;
    case EventKind::epoch_start:
      control.begin_epoch(e.epoch);
      if (e.mono_ns) latency_us_.push_back(static_cast<double>(now_ns() - *e.mono_ns) / 1e3);
      break;
    case EventKind::phase:
      if (e.eval_phase) control.begin_eval();
      break;
    case EventKind::progress: {
      if (!control.epoch_open() || !e.has_loss) break;  // nothing to show or check
      auto p = e.progress;
      p.epoch = control.epochs_done() + 1;
      if (auto why = control.batch(p)) {
        control.diverge(fmt::format("diverged in epoch {} after {} batches: {}", p.epoch, p.step, *why));
        diverged_ = true;
      }
      break;
    }
    case EventKind::epoch_end: {
      if (!control.epoch_open() || e.epoch != control.epochs_done() + 1)
        throw WorkloadError(fmt::format("malformed event order: epoch {} ended, but it is not the open epoch", e.epoch));
      const auto boundary_ns = now_ns();
      const auto v = control.end_epoch(e.metrics);
      if (e.mono_ns) latency_us_.push_back(static_cast<double>(boundary_ns - *e.mono_ns) / 1e3);
      if (v.stop) stop_sent_ = true;
      impl_->outbox += epoch_reply(e.epoch, v) + "\n";
      impl_->flush();
      if (impl_->outbox.size() > kMaxQueuedReplyBytes)
        throw WorkloadError(fmt::format("does not read powertrain's replies ({} bytes of them wait unread)",
                                        impl_->outbox.size()));
      break;
    }
    case EventKind::test:
      control.set_test(e.test_metric, e.test_task_metrics);
      test_seen_ = true;
      break;
    case EventKind::checkpoint:
    case EventKind::end: break;
  }
}

}  // namespace powertrain::external
