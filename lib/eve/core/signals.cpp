#include "eve/core/signals.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>

#include "eve/core/error.h"
#include "eve/core/log.h"

namespace eve::signals {
namespace {
std::atomic<int> g_signal{0};
std::atomic<int> g_defer{0};      // live DeferHardStop objects
std::atomic<bool> g_held{false};  // a second signal arrived while deferred

// A note the handler may write: text + length, published by `ready` (the handler skips a
// note that is being rewritten).
struct Note {
  char text[1024];
  std::atomic<size_t> size{0};
  std::atomic<bool> ready{false};
};
Note g_program, g_stop, g_abandon;

void set(Note& n, const std::string& text) {
  n.ready = false;
  const size_t len = std::min(text.size(), sizeof n.text - 2);
  std::memcpy(n.text, text.data(), len);
  n.size = len;
  n.ready = true;
}

// Async-signal-safe: write(2) only.
void put(const char* s, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}
void put_prefixed(const char* s, size_t n) {
  if (g_program.ready.load()) put(g_program.text, g_program.size.load());
  put(": ", 2);
  put(s, n);
  put("\n", 1);
}
void put_line(const Note& n) {
  if (n.ready.load() && n.size.load() > 0) put_prefixed(n.text, n.size.load());
}

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) {
    put_line(g_stop);
    return;
  }
  if (g_defer.load() > 0 && !g_held.exchange(true)) {
    // Second signal during a checkpoint write: finish the write first.
    static const char kHeld[] = "finishing the checkpoint being written, then stopping (another signal abandons it)";
    put_prefixed(kHeld, sizeof kHeld - 1);
    return;
  }
  // Give up on a clean stop.
  put_line(g_abandon);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

void install() {
  set(g_program, log::program());
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
void reset() {
  g_signal = 0;
  g_held = false;
}

void set_stop_note(const std::string& text) { set(g_stop, text); }
void set_abandon_note(const std::string& text) { set(g_abandon, text); }

DeferHardStop::DeferHardStop() { ++g_defer; }
DeferHardStop::~DeferHardStop() { --g_defer; }
bool hard_stop_held() { return g_held.load(); }

}  // namespace eve::signals
