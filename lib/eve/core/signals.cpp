#include "eve/core/signals.h"

#include <atomic>
#include <csignal>

#include "eve/core/error.h"

namespace eve::signals {
namespace {
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // Second signal: give up on a clean stop.
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
}  // namespace

void install() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_signal.load(std::memory_order_relaxed) != 0; }
int stop_signal() { return g_signal.load(); }
void throw_if_stopped() {
  if (int s = g_signal.load()) throw Interrupted(s);
}
void request_stop(int signal) { g_signal = signal; }
void reset() { g_signal = 0; }

}  // namespace eve::signals
