#include "powertrain/session/signals.h"

#include <signal.h>

namespace powertrain::session {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_signal{0};
struct sigaction g_old_int {}, g_old_term {}, g_old_hup {};

void on_signal(int sig) {
  g_signal = sig;
  g_stop = true;
}

}  // namespace

StopOnSignals::StopOnSignals() {
  g_stop = false;
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second signal kills at once
  ::sigaction(SIGINT, &sa, &g_old_int);
  ::sigaction(SIGTERM, &sa, &g_old_term);
  ::sigaction(SIGHUP, &sa, &g_old_hup);  // a closed terminal or ssh session: stop as gracefully
}

StopOnSignals::~StopOnSignals() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
  ::sigaction(SIGHUP, &g_old_hup, nullptr);
}

const std::atomic<bool>* StopOnSignals::flag() const { return &g_stop; }
int StopOnSignals::signal() const { return g_signal.load(); }

}  // namespace powertrain::session
